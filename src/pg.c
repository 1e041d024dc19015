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
#include "raftpg/pg.h"
#include "raftpg/loopwatch.h"

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
    "  ELSE '' END";

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

/* ---- quoting and parsing (pure) -------------------------------------------------------------- */

static bool quote_with(const char *s, char *buf, size_t size, bool conf)
{
    size_t n = 0;
    if (size < 3) {
        if (size > 0) {
            buf[0] = '\0';
        }
        return false;
    }
    buf[n++] = '\'';
    for (; *s != '\0'; s++) {
        char esc = 0;
        if (*s == '\'') {
            esc = conf ? '\'' : '\\';
        } else if (*s == '\\') {
            esc = '\\';
        }
        /* A raw line break ends a postgresql.conf line: the file would not parse. */
        char ch = *s;
        if (conf && (ch == '\n' || ch == '\r')) {
            esc = '\\';
            ch = ch == '\n' ? 'n' : 'r';
        }
        if (n + (esc ? 2 : 1) + 2 > size) {
            buf[0] = '\0';
            return false;
        }
        if (esc) {
            buf[n++] = esc;
        }
        buf[n++] = ch;
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return true;
}

bool pg_conninfo_quote(const char *s, char *buf, size_t size)
{
    return quote_with(s, buf, size, false);
}

bool pg_conf_quote(const char *s, char *buf, size_t size)
{
    return quote_with(s, buf, size, true);
}

bool pg_passfile_escape(const char *s, char *buf, size_t size)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        if (*s == '\n' || *s == '\r') {
            goto err;
        }
        bool esc = *s == ':' || *s == '\\';
        if (n + (esc ? 2 : 1) + 1 > size) {
            goto err;
        }
        if (esc) {
            buf[n++] = '\\';
        }
        buf[n++] = *s;
    }
    if (n + 1 > size) {
        goto err;
    }
    buf[n] = '\0';
    return true;
err:
    if (size > 0) {
        buf[0] = '\0';
    }
    return false;
}

static const char *field_after(const char *text, const char *label)
{
    const char *at = strstr(text, label);
    if (at == NULL) {
        return NULL;
    }
    at += strlen(label);
    while (*at == ' ' || *at == '\t') {
        at++;
    }
    return at;
}

bool pg_controldata_cut_short(const char *output)
{
    if (strstr(output, "pg_control") == NULL) {
        return false;
    }
    /* Missing (a copy that never got that far) or shorter than it must be (cut off mid-write). */
    return strstr(output, "No such file or directory") != NULL ||
           (strstr(output, "could not read file") != NULL && strstr(output, ": read ") != NULL);
}

bool pg_rewind_retryable(const char *output)
{
    /* Failures before pg_rewind changed anything in the target: the source was not ready or not
     * reachable, or the single-user crash recovery met leftovers of the killed server. A failure
     * after it began copying is not among them: that directory is no longer consistent. */
    static const char *const before_copy[] = {
        "could not connect to server",
        "connection to server at",
        "connection to server on socket",
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
        "source server must not be in recovery mode",
        "pre-existing shared memory block",
        "lock file \"postmaster.pid\" already exists",
    };
    /* With --progress pg_rewind says "need to copy" right before its point of no return. */
    if (strstr(output, "need to copy ") != NULL) {
        return false;
    }
    /* Its progress lines show how far it got: still reading, the source went away (stopped by
     * its own fence, say) before anything in the target changed. Without them (a tail cut
     * short) nothing shows how far it got. */
    if (strstr(output, "reading source file list") != NULL &&
        (strstr(output, "server closed the connection unexpectedly") != NULL ||
         strstr(output, "terminating connection due to") != NULL ||
         strstr(output, "could not fetch file list") != NULL)) {
        return true;
    }
    if (strstr(output, "error running query") != NULL ||
        strstr(output, "could not fetch") != NULL) {
        return false;
    }
    for (size_t i = 0; i < sizeof before_copy / sizeof before_copy[0]; i++) {
        if (strstr(output, before_copy[i]) != NULL) {
            return true;
        }
    }
    return false;
}

bool pg_controldata_clean(const char *output)
{
    const char *v = field_after(output, "Database cluster state:");
    return v != NULL && strncmp(v, "shut down", 9) == 0;
}

bool pg_controldata_rewindable(const char *output)
{
    const char *hints = field_after(output, "wal_log_hints setting:");
    const char *sums = field_after(output, "Data page checksum version:");
    return (hints != NULL && strncmp(hints, "on", 2) == 0) ||
           (sums != NULL && *sums >= '1' && *sums <= '9');
}

const char *pg_restore_command(const struct conf *c)
{
    if (c->postgresql.restore_command[0] != '\0') {
        return c->postgresql.restore_command;
    }
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        if (strcmp(c->postgresql.parameters[i].key, "restore_command") == 0) {
            return c->postgresql.parameters[i].value;
        }
    }
    return "";
}

unsigned pg_rewind_args(const struct conf *c, const char *bin, const char *source, char **argv)
{
    unsigned n = 0;
    argv[n++] = (char *)bin;
    /* pg_rewind reads the target's restore_command with postgres -C, which sees raftpg.conf
     * through postgresql.conf in the data directory: WAL the old primary recycled since the fork
     * comes back from the archive instead of ending the rewind. */
    if (pg_restore_command(c)[0] != '\0') {
        argv[n++] = "--restore-target-wal";
    }
    /* Its progress lines tell a failure before its point of no return from one after
     * (pg_rewind_retryable). */
    argv[n++] = "--progress";
    argv[n++] = "-D";
    argv[n++] = (char *)c->postgresql.data_dir;
    argv[n++] = (char *)source;
    argv[n] = NULL;
    return n;
}

bool pg_basebackup_progress(const char *output, uint64_t *done_kb, uint64_t *total_kb)
{
    bool found = false;
    const char *line = output;
    while (*line != '\0') {
        size_t n = strcspn(line, "\r\n");
        unsigned long long d = 0, t = 0;
        char unit[4] = "", one[128];
        /* Without a terminal pg_basebackup ends each report with a newline, with one with \r. */
        rpg_fmt(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), line);
        if (n > 0 && sscanf(one, " %llu/%llu %3s", &d, &t, unit) == 3 && strcmp(unit, "kB") == 0) {
            *done_kb = d;
            *total_kb = t;
            found = true;
        }
        line += n;
        while (*line == '\r' || *line == '\n') {
            line++;
        }
    }
    return found;
}

int pg_parse_controldata(const char *text, uint64_t *system_id, uint32_t *timeline,
                         bool *was_primary, char *errmsg)
{
    const char *v = field_after(text, "Database system identifier:");
    if (v == NULL || *v < '0' || *v > '9') {
        return rpg_err(errmsg, RPG_EPROTO, "pg_controldata: no database system identifier");
    }
    *system_id = strtoull(v, NULL, 10);
    v = field_after(text, "Latest checkpoint's TimeLineID:");
    if (v == NULL || *v < '0' || *v > '9') {
        return rpg_err(errmsg, RPG_EPROTO, "pg_controldata: no latest checkpoint timeline");
    }
    *timeline = (uint32_t)strtoul(v, NULL, 10);
    /* A standby's minimum recovery point can be on a newer timeline than its last restartpoint. */
    v = field_after(text, "Min recovery ending loc's timeline:");
    if (v != NULL && *v >= '0' && *v <= '9') {
        uint32_t t = (uint32_t)strtoul(v, NULL, 10);
        if (t > *timeline) {
            *timeline = t;
        }
    }
    v = field_after(text, "Database cluster state:");
    if (v == NULL) {
        return rpg_err(errmsg, RPG_EPROTO, "pg_controldata: no database cluster state");
    }
    /* A primary writes "in production", "shutting down" and "shut down"; a server started without
     * a standby or recovery signal replays as "in crash recovery". A standby's states are "in
     * archive recovery" and "shut down in recovery". */
    *was_primary =
        strncmp(v, "in production", 13) == 0 || strncmp(v, "shutting down", 13) == 0 ||
        strncmp(v, "in crash recovery", 17) == 0 ||
        (strncmp(v, "shut down", 9) == 0 && strncmp(v, "shut down in recovery", 21) != 0);
    return 0;
}

int pg_history_switchpoint(const char *text, uint32_t timeline, uint64_t *lsn)
{
    const char *line = text;
    while (line != NULL && *line != '\0') {
        unsigned tli = 0, hi = 0, lo = 0;
        if (*line != '#' && sscanf(line, "%u %X/%X", &tli, &hi, &lo) == 3 && tli == timeline) {
            *lsn = ((uint64_t)hi << 32) | lo;
            return 0;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return -1;
}

int pg_parse_checkpoint(const char *text, uint64_t *lsn, bool *shut_down)
{
    const char *v = field_after(text, "Latest checkpoint location:");
    unsigned hi = 0, lo = 0;
    char tail = '\0';
    if (v == NULL || sscanf(v, "%X/%X%c", &hi, &lo, &tail) < 2 || (tail != '\0' && tail != '\n')) {
        return RPG_EPROTO;
    }
    *lsn = ((uint64_t)hi << 32) | lo;
    v = field_after(text, "Database cluster state:");
    *shut_down = v != NULL && strncmp(v, "shut down", 9) == 0 &&
                 strncmp(v, "shut down in recovery", 21) != 0;
    return 0;
}

/* ---- small file helpers ---------------------------------------------------------------------- */

static void path_in(const struct pg *p, const char *file, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s/%s", p->conf->postgresql.data_dir, file);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The last failure of the agent's own writes that says the storage refuses them (full,
 * read-only, not permitted, failing), "" after a write succeeded: one of the reasons a primary
 * is unwritable (ha_pg.unwritable). One agent, one data directory: file scope will do. */
static char storage_error[HA_WHY_MAX];

static int write_failed(const char *what, const char *path, int e, char *errmsg)
{
    if (e == ENOSPC || e == EROFS || e == EACCES || e == EPERM || e == EIO || e == EDQUOT) {
        rpg_fmt(storage_error, sizeof storage_error, "the agent cannot %s %s: %s", what, path,
                strerror(e));
    }
    return rpg_err(errmsg, RPG_EIO, "cannot %s %s: %s", what, path, strerror(e));
}

/* Configuration files: written to a temporary file renamed over the target, so a crash never
 * leaves half a file. */
static int write_file(const char *path, const char *text, mode_t mode, char *errmsg)
{
    char tmp[PATH_MAX + 8];
    rpg_fmt(tmp, sizeof tmp, "%s.tmp", path);
    /* Created afresh with mode, never through a link or over a file another user prepared: some
     * of these files hold passwords. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        return write_failed("write", tmp, errno, errmsg);
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return write_failed("write", tmp, e, errmsg);
        }
        off += (size_t)n;
    }
    /* No fsync: these files are rewritten before every start, and an fsync could stall the
     * loop for as long as the disk is busy. */
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return write_failed("write", tmp, e, errmsg);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return write_failed("rename", tmp, e, errmsg);
    }
    storage_error[0] = '\0';
    return 0;
}

/* Reads at most size-1 bytes from the end of path into buf; "" on error. */
static void read_tail(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        long from = end > (long)size - 1 ? end - ((long)size - 1) : 0;
        fseek(f, from, SEEK_SET);
    }
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* The last line of the server log that reports a problem, for error messages. */
static void log_reason(const struct pg *p, char *buf, size_t size)
{
    char path[PATH_MAX + 8], tail[4096];
    rpg_fmt(path, sizeof path, "%s.log", p->conf->postgresql.data_dir);
    read_tail(path, tail, sizeof tail);
    buf[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(tail, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "FATAL") != NULL || strstr(line, "ERROR") != NULL ||
            strstr(line, "PANIC") != NULL) {
            rpg_fmt(buf, size, "%s", line);
        }
    }
}

static int mkdir_parent(const char *path, char *errmsg)
{
    char dir[PATH_MAX];
    rpg_fmt(dir, sizeof dir, "%s", path);
    for (char *s = dir + 1; *s != '\0'; s++) {
        if (*s != '/') {
            continue;
        }
        *s = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            return rpg_err(errmsg, RPG_EIO, "cannot create %s: %s", dir, strerror(errno));
        }
        *s = '/';
    }
    return 0;
}

/* ---- configuration files --------------------------------------------------------------------- */

static bool param_given(const struct pg *p, const char *key)
{
    for (unsigned i = 0; i < p->conf->postgresql.n_parameters; i++) {
        if (strcmp(p->conf->postgresql.parameters[i].key, key) == 0) {
            return true;
        }
    }
    return false;
}

/* The password file of the agent's children and of the WAL receiver (both run as the agent's
 * user), so that no password is ever a program's argument: beside the data directory like the
 * server log, not in it (clones and rewinds copy the data directory), and not in the Raft
 * directory (whose contents tell a lost Raft log from a new member). */
static void passfile_path(const struct pg *p, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s.pgpass", p->conf->postgresql.data_dir);
}

/* One password file line for user's password; database "replication" matches the physical
 * replication connections only. */
static int passfile_line(const char *database, const char *user, const char *password,
                         const char *key, char *buf, size_t size, char *errmsg)
{
    char euser[2 * CONF_NAME_MAX + 1], epass[2 * 256 + 1];
    if (!pg_passfile_escape(user, euser, sizeof euser) ||
        !pg_passfile_escape(password, epass, sizeof epass)) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "postgresql.authentication.%s: a password file cannot hold it (a line "
                       "break, or too long)",
                       key);
    }
    size_t n = strlen(buf);
    int w = snprintf(buf + n, size - n, "*:*:%s:%s:%s\n", database, euser, epass);
    if (w < 0 || (size_t)w >= size - n) {
        return rpg_err(errmsg, RPG_EINVAL, "password file too long");
    }
    return 0;
}

/* Writes the password file with every configured password. The replication role's line comes
 * first and names the replication database, so that a superuser of the same name keeps its own
 * password for other connections. */
static int write_passfile(const struct pg *p, char *errmsg)
{
    const struct conf *c = p->conf;
    char path[PATH_MAX + 16], text[2 * (2 * CONF_NAME_MAX + 2 * 256 + 32)] = "";
    int rv = 0;
    if (c->postgresql.replication_password[0] != '\0' &&
        (rv = passfile_line("replication", c->postgresql.replication_name,
                            c->postgresql.replication_password, "replication.password", text,
                            sizeof text, errmsg)) != 0) {
        goto out;
    }
    if (c->postgresql.superuser_password[0] != '\0' &&
        (rv = passfile_line("*", c->postgresql.superuser_name, c->postgresql.superuser_password,
                            "superuser.password", text, sizeof text, errmsg)) != 0) {
        goto out;
    }
    passfile_path(p, path, sizeof path);
    /* libpq ignores a password file that group or others may read: 0600 is required. */
    if ((rv = mkdir_parent(path, errmsg)) == 0) {
        rv = write_file(path, text, 0600, errmsg);
    }
out:
    return rv;
}

/* conninfo for a connection to up's PostgreSQL as user. A configured password reaches libpq
 * through the agent's password file, never in the conninfo: the conninfo becomes an argument
 * of pg_basebackup and pg_rewind, which every local user sees. */
static int conninfo_for(const struct pg *p, const struct pg_upstream *up, bool replication,
                        char *buf, size_t size, char *errmsg)
{
    const struct conf *c = p->conf;
    char host[16] = "";
    uint16_t port = 0;
    conf_parse_addr(up->address, host, &port);
    const char *user = replication ? c->postgresql.replication_name : c->postgresql.superuser_name;
    const char *password = replication ? c->postgresql.replication_password
                                       : c->postgresql.superuser_password;
    char quser[2 * CONF_NAME_MAX + 3], qapp[2 * FSM_NAME_MAX + 3];
    char own[PATH_MAX + 16], qpassfile[2 * (PATH_MAX + 16) + 3];
    const char *passfile = c->postgresql.passfile;
    if (password[0] != '\0') {
        int rv = write_passfile(p, errmsg);
        if (rv != 0) {
            return rv;
        }
        passfile_path(p, own, sizeof own);
        passfile = own;
    }
    pg_conninfo_quote(user, quser, sizeof quser);
    pg_conninfo_quote(p->member, qapp, sizeof qapp);
    int n = snprintf(buf, size, "host=%s port=%u user=%s application_name=%s connect_timeout=3",
                     host, (unsigned)port, quser, qapp);
    if (passfile[0] != '\0' && n > 0 && (size_t)n < size) {
        pg_conninfo_quote(passfile, qpassfile, sizeof qpassfile);
        rpg_fmt(buf + n, size - (size_t)n, " passfile=%s", qpassfile);
    }
    if (!replication && n > 0 && (size_t)n < size) {
        size_t l = strlen(buf);
        rpg_fmt(buf + l, size - l, " dbname=postgres");
    }
    return 0;
}

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = *buf != NULL ? vsnprintf(*buf + *len, *cap - *len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = *cap * 2 + (n > 0 ? (size_t)n : 0) + 1024;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL) {
            return; /* the caller sees a truncated file only if memory is exhausted */
        }
        *buf = nb;
        *cap = ncap;
    }
}

/* The socket directory raftpg sets: beside the data directory, not in it (pg_rewind and
 * pg_basebackup would try to copy the socket; the distribution's default directory may not
 * exist or be writable). */
static void socket_dir(const struct pg *p, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s", p->conf->postgresql.data_dir);
    char *slash = strrchr(buf, '/');
    if (slash != NULL && slash != buf) {
        *slash = '\0';
    }
}

#define SYNC_BLOCK_BEGIN "# raftpg synchronous settings\n"
#define SYNC_BLOCK_END "# end of raftpg synchronous settings\n"

/* The synchronous settings as one block of raftpg.conf, so that a change rewrites them alone. */
static int append_sync_block(struct pg *p, char **buf, size_t *len, size_t *cap, char *errmsg)
{
    /* Only the primary waits for acknowledgements; a standby keeps it set harmlessly and has it
     * right the moment it is promoted. */
    char qs[2 * sizeof p->sync_names + 3];
    if (!pg_conf_quote(p->sync_names, qs, sizeof qs)) {
        return rpg_err(errmsg, RPG_EINVAL, "synchronous_standby_names too long");
    }
    append(buf, len, cap, SYNC_BLOCK_BEGIN "synchronous_standby_names = %s\n", qs);
    if (p->sync_commit[0] != '\0') {
        append(buf, len, cap, "synchronous_commit = '%s'\n", p->sync_commit);
    }
    append(buf, len, cap, SYNC_BLOCK_END);
    return 0;
}

/* Replaces the synchronous settings of raftpg.conf and leaves every other line as it is: what a
 * running server streams from and whether it is a standby are its own to say (rule 10), not
 * this process's memory of what it wrote. A file without the block gets it at the end (the last
 * setting wins). */
static int write_sync_settings(struct pg *p, char *errmsg)
{
    char path[PATH_MAX + 32], line[8192];
    path_in(p, CONF_FILE, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool in_block = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strcmp(line, SYNC_BLOCK_BEGIN) == 0) {
            in_block = true;
        } else if (in_block) {
            in_block = strcmp(line, SYNC_BLOCK_END) != 0;
        } else {
            append(&buf, &len, &cap, "%s", line);
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    int rv = failed ? rpg_err(errmsg, RPG_EIO, "cannot read %s", path)
                    : append_sync_block(p, &buf, &len, &cap, errmsg);
    if (rv == 0) {
        rv = buf != NULL ? write_file(path, buf, 0600, errmsg)
                         : rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    free(buf);
    return rv;
}

/* Writes raftpg.conf (included last by postgresql.conf), pg_hba.conf and, for a server that is
 * not running, the standby signal: a running server read it at its start, and a running primary
 * must never get one (rule 10). */
static int write_config(struct pg *p, bool standby, const struct pg_upstream *up, char *errmsg)
{
    const struct conf *c = p->conf;
    char path[PATH_MAX + 32], host[16] = "", q[2 * PATH_MAX + 3];
    uint16_t port = 0;
    conf_parse_addr(c->postgresql.listen, host, &port);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rv = 0;

    append(&buf, &len, &cap, "# written by raftpg on every start: edits are lost\n");
    append(&buf, &len, &cap, "%s%s\n", UPSTREAM_MARK, standby && up != NULL ? up->name : "");
    /* Defaults that the configuration may override. */
    if (!param_given(p, "wal_retrieve_retry_interval")) {
        /* A standby acts on a promote request only after this (DESIGN.md §9). */
        append(&buf, &len, &cap, "wal_retrieve_retry_interval = '50ms'\n");
    }
    if (!param_given(p, "unix_socket_directories")) {
        char parent[PATH_MAX];
        socket_dir(p, parent, sizeof parent);
        pg_conf_quote(parent, q, sizeof q);
        append(&buf, &len, &cap, "unix_socket_directories = %s\n", q);
    }
    if (!param_given(p, "hot_standby")) {
        append(&buf, &len, &cap, "hot_standby = on\n");
    }
    if (!param_given(p, "wal_log_hints")) {
        append(&buf, &len, &cap, "wal_log_hints = on\n");
    }
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        char qv[2048];
        if (!pg_conf_quote(c->postgresql.parameters[i].value, qv, sizeof qv)) {
            rv = rpg_err(errmsg, RPG_EINVAL, "postgresql.parameters.%s: value too long",
                         c->postgresql.parameters[i].key);
            goto out;
        }
        append(&buf, &len, &cap, "%s = %s\n", c->postgresql.parameters[i].key, qv);
    }
    if (c->postgresql.restore_command[0] != '\0') {
        /* postgresql.recovery_conf.restore_command: after the parameters, so it wins. */
        char qr[2 * sizeof c->postgresql.restore_command + 3];
        pg_conf_quote(c->postgresql.restore_command, qr, sizeof qr);
        append(&buf, &len, &cap, "restore_command = %s\n", qr);
    }
    /* What raftpg owns comes last, so it wins. */
    append(&buf, &len, &cap, "listen_addresses = '%s'\nport = %u\n", host, (unsigned)port);
    pg_conf_quote(c->scope, q, sizeof q);
    append(&buf, &len, &cap, "cluster_name = %s\n", q);
    append(&buf, &len, &cap, "recovery_target_timeline = 'latest'\n");
    if ((rv = append_sync_block(p, &buf, &len, &cap, errmsg)) != 0) {
        goto out;
    }
    if (standby && up != NULL) {
        char ci[2048], qci[4200], slot[FSM_NAME_MAX];
        if ((rv = conninfo_for(p, up, true, ci, sizeof ci, errmsg)) != 0) {
            goto out;
        }
        pg_conf_quote(ci, qci, sizeof qci);
        append(&buf, &len, &cap, "primary_conninfo = %s\n", qci);
        if (up->slot_id != 0) {
            ha_slot_name(up->slot_id, slot, sizeof slot);
            append(&buf, &len, &cap, "primary_slot_name = '%s'\n", slot);
        } else {
            append(&buf, &len, &cap, "primary_slot_name = ''\n");
        }
    } else {
        append(&buf, &len, &cap, "primary_conninfo = ''\nprimary_slot_name = ''\n");
    }
    if (buf == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    path_in(p, CONF_FILE, path, sizeof path);
    if ((rv = write_file(path, buf, 0600, errmsg)) != 0) {
        goto out;
    }

    /* postgresql.conf includes raftpg.conf last; clones and rewinds copy the line along. */
    path_in(p, "postgresql.conf", path, sizeof path);
    {
        char *main = NULL;
        size_t mlen = 0, mcap = 0;
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char line[4096];
            while (fgets(line, sizeof line, f) != NULL) {
                append(&main, &mlen, &mcap, "%s", line);
            }
            fclose(f);
        }
        const char *inc = "include_if_exists = '" CONF_FILE "'";
        if (main == NULL || strstr(main, inc) == NULL) {
            append(&main, &mlen, &mcap, "%s%s\n", mlen > 0 && main[mlen - 1] != '\n' ? "\n" : "",
                   inc);
            rv = main != NULL ? write_file(path, main, 0600, errmsg)
                              : rpg_err(errmsg, RPG_ENOMEM, "out of memory");
        }
        free(main);
        if (rv != 0) {
            goto out;
        }
    }

    if (c->postgresql.n_pg_hba > 0) {
        len = 0;
        append(&buf, &len, &cap, "# written by raftpg from postgresql.pg_hba: edits are lost\n");
        for (unsigned i = 0; i < c->postgresql.n_pg_hba; i++) {
            append(&buf, &len, &cap, "%s\n", c->postgresql.pg_hba[i]);
        }
        path_in(p, "pg_hba.conf", path, sizeof path);
        if ((rv = write_file(path, buf, 0600, errmsg)) != 0) {
            goto out;
        }
    }

    path_in(p, "standby.signal", path, sizeof path);
    if (pg_postmaster_pid(p) != 0) {
        /* Running: the file is read only at a start; left as it is. */
    } else if (standby) {
        if ((rv = write_file(path, "", 0600, errmsg)) != 0) {
            goto out;
        }
    } else if (unlink(path) != 0 && errno != ENOENT) {
        rv = rpg_err(errmsg, RPG_EIO, "cannot remove %s: %s", path, strerror(errno));
        goto out;
    }
    rpg_fmt(p->obs.upstream, sizeof p->obs.upstream, "%s", standby && up != NULL ? up->name : "");
out:
    free(buf);
    return rv;
}

/* The upstream recorded in raftpg.conf by an earlier run of the agent. */
static void read_upstream(struct pg *p)
{
    char path[PATH_MAX + 32], line[512];
    path_in(p, CONF_FILE, path, sizeof path);
    p->obs.upstream[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, UPSTREAM_MARK, strlen(UPSTREAM_MARK)) == 0) {
            char *v = line + strlen(UPSTREAM_MARK);
            v[strcspn(v, "\r\n")] = '\0';
            rpg_fmt(p->obs.upstream, sizeof p->obs.upstream, "%s", v);
            break;
        }
    }
    fclose(f);
}

/* ---- the observer's connection --------------------------------------------------------------- */

static void observe(struct pg *p);
static void conn_drop(struct pg *p, const char *why);
static void rejoin_stage(struct pg *p, enum pg_rejoin_stage stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
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

static void handle_closed(uv_handle_t *h)
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
            conn_drop(p, "cannot watch the postgresql connection");
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
static void conn_drop(struct pg *p, const char *why)
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
    conn_drop(p, "postgresql did not answer in time");
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
        conn_drop(p, "cannot connect to postgresql");
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
        conn_drop(p, why);
        return;
    }
    p->conn_phase = CONN_BUSY;
    p->query_epoch = p->epoch;
    uv_timer_start(&p->deadline, on_deadline, PG_QUERY_TIMEOUT_MS, 0);
    poll_for(p, PQflush(p->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
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
    if (PQntuples(res) != 1 || PQnfields(res) != 17) {
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
    p->pending_restart = strcmp(PQgetvalue(res, 0, 14), "t") == 0;
    p->replay_paused = strcmp(PQgetvalue(res, 0, 15), "t") == 0;
    rpg_fmt(p->replay_timestamp, sizeof p->replay_timestamp, "%s", PQgetvalue(res, 0, 16));
    o->streaming = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    o->checkpoint_timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 7), NULL, 10);
    rpg_fmt(p->sync_seen, sizeof p->sync_seen, "%s", PQgetvalue(res, 0, 8));
    ha_pg_track_streaming(o, &p->not_streaming_since, now);
    if (p->rejoin.running && p->rejoin.stage == PG_REJOIN_START_STANDBY && p->op == PG_OP_NONE &&
        o->in_recovery && o->streaming) {
        rejoin_stage(p, PG_REJOIN_STREAMING, "streaming from %s",
                     o->upstream[0] ? o->upstream : "the primary");
    }
    ha_pg_track_receiver(o, o->in_recovery ? PQgetvalue(res, 0, 9) : "", &p->receiver_since, now);
    ha_pg_track_fork(o, o->in_recovery ? fork_reading(p) : HA_FORK_CLEAR, &p->past_fork_since, now);
    conninfo_target(o->in_recovery ? PQgetvalue(res, 0, 10) : "", o->conninfo, sizeof o->conninfo);
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
        conn_drop(p, "postgresql connection error");
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
            observe(p);
            return;
        default: {
            char why[RPG_ERRMSG_SIZE];
            rpg_fmt(why, sizeof why, "cannot connect to postgresql: %s", PQerrorMessage(p->conn));
            why[strcspn(why, "\n")] = '\0';
            if (p->obs.state != HA_PG_RUNNING) {
                rpg_fmt(p->state_detail, sizeof p->state_detail, "%s", why);
            }
            conn_drop(p, why);
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
            conn_drop(p, "postgresql connection lost");
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
            conn_drop(p, why);
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

int pg_signal_server(int postmaster_pid, int sig)
{
    if (postmaster_pid <= 0 || kill(postmaster_pid, sig) != 0) {
        return 0;
    }
    int n = 1;
    DIR *d = opendir("/proc");
    if (d == NULL) {
        return n;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end != '\0' || pid == postmaster_pid) {
            continue;
        }
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid ...: comm may hold spaces and parentheses, so from the last ')'. */
        const char *rp = strrchr(buf, ')');
        int ppid = 0;
        char state = 0;
        if (rp != NULL && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == postmaster_pid &&
            kill((pid_t)pid, sig) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Whether process pid is a PostgreSQL server process (its command name; a shell that changed to
 * the data directory is not). */
static bool is_postgres(long pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    bool ok = fgets(comm, sizeof comm, f) != NULL && strcmp(comm, "postgres\n") == 0;
    fclose(f);
    return ok;
}

/* Whether process pid works in directory dir (a resolved path): PostgreSQL's postmaster and every
 * child of it change to the data directory. */
static bool works_in(long pid, const char *dir)
{
    char link[64], cwd[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%ld/cwd", pid);
    ssize_t n = readlink(link, cwd, sizeof cwd - 1);
    if (n <= 0) {
        return false;
    }
    cwd[n] = '\0';
    return strcmp(cwd, dir) == 0;
}

/* Whether pid is a standalone backend (postgres --single, as pg_rewind runs one for crash
 * recovery): it works in the data directory like a postmaster but accepts no connection, so
 * it is no server to fence or to wait for. Its postmaster.pid line holds the negated pid. */
static bool is_single_user(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        buf[n] = '\0';
        if (strcmp(buf + i, "--single") == 0) {
            return true;
        }
    }
    return false;
}

/* Whether pid is on its way out: an exiting process has released its memory (its command line
 * reads empty) while it still shows its name and working directory for a moment. A standalone
 * backend ending its crash recovery looks like a postmaster then, and no exiting process can
 * accept a write. */
static bool exiting(long pid)
{
    char path[64], c;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(&c, 1, 1, f);
    fclose(f);
    return n == 0;
}

static long parent_of(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *rp = strrchr(buf, ')');
    char state = 0;
    long ppid = 0;
    if (rp == NULL || sscanf(rp + 1, " %c %ld", &state, &ppid) != 2 || state == 'Z' ||
        state == 'X') {
        return 0;
    }
    return ppid;
}

/* How often the process table is searched for a postmaster whose postmaster.pid is gone. */
#define PG_SCAN_INTERVAL_MS 250

/* The postmaster of data_dir from the process table, for a server whose postmaster.pid was
 * removed or overwritten (rule 10: the process table knows, the file may not): a process working
 * in the data directory whose parent does not. 0 when there is none. A search that found nothing
 * is not repeated for PG_SCAN_INTERVAL_MS (the fence asks every 10 ms). */
static int find_postmaster(const char *data_dir)
{
    static char last_dir[PATH_MAX];
    static int last_pid;
    static rpg_msec last_scan;
    char dir[PATH_MAX];
    if (realpath(data_dir, dir) == NULL) {
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rpg_msec now = (rpg_msec)ts.tv_sec * 1000 + (rpg_msec)(ts.tv_nsec / 1000000);
    bool same = strcmp(dir, last_dir) == 0;
    if (same && last_pid > 0 && parent_of(last_pid) > 0 && works_in(last_pid, dir) &&
        is_postgres(last_pid) && !exiting(last_pid)) {
        return last_pid;
    }
    if (same && last_pid == 0 && now - last_scan < PG_SCAN_INTERVAL_MS) {
        return 0;
    }
    rpg_fmt(last_dir, sizeof last_dir, "%s", dir);
    last_scan = now;
    last_pid = 0;
    DIR *d = opendir("/proc");
    if (d == NULL) {
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || pid > INT32_MAX || *end != '\0' || !works_in(pid, dir) ||
            !is_postgres(pid)) {
            continue;
        }
        long ppid = parent_of(pid);
        if (ppid > 0 && !(works_in(ppid, dir) && is_postgres(ppid)) && !is_single_user(pid) &&
            !exiting(pid)) {
            last_pid = (int)pid;
            break;
        }
    }
    closedir(d);
    return last_pid;
}

/* Any PostgreSQL process working in data_dir (a backend a killed postmaster left behind holds its
 * shared memory until it notices, and single-user mode refuses to run beside it). 0 when none. */
static int pid_working_in(const char *data_dir)
{
    char dir[PATH_MAX];
    if (realpath(data_dir, dir) == NULL) {
        return 0;
    }
    DIR *d = opendir("/proc");
    if (d == NULL) {
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while (found == 0 && (e = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (pid > 0 && pid <= INT32_MAX && *end == '\0' && works_in(pid, dir) && is_postgres(pid)) {
            found = (int)pid;
        }
    }
    closedir(d);
    return found;
}

/* The postmaster last confirmed through postmaster.pid and the process table, held by a pidfd.
 * While that process has not exited and postmaster.pid is still the same file (removed,
 * replaced or reached through a moved directory, it is not), the process is still this
 * directory's postmaster: a postmaster never leaves its data directory and no second one starts
 * beside it. The fence asks every 10 ms, so this saves some thirty system calls a question
 * (realpath, the file, /proc) for two. One entry: an agent has one data directory. */
static struct {
    char data_dir[PATH_MAX];
    dev_t dev;
    ino_t ino;
    int pid;
    int pidfd; /* -1: nothing confirmed */
} confirmed = {.pidfd = -1};

static void confirmed_forget(void)
{
    if (confirmed.pidfd >= 0) {
        close(confirmed.pidfd);
    }
    confirmed.pidfd = -1;
    confirmed.pid = 0;
}

/* The confirmed postmaster of data_dir, 0 when there is none or it must be looked up again. */
static int confirmed_pid(const char *data_dir, const char *pid_file)
{
    struct stat st;
    if (confirmed.pidfd < 0 || strcmp(confirmed.data_dir, data_dir) != 0 ||
        stat(pid_file, &st) != 0 || st.st_dev != confirmed.dev || st.st_ino != confirmed.ino) {
        return 0;
    }
    /* A pidfd polls readable once its process has exited (a zombie included). */
    struct pollfd pfd = {.fd = confirmed.pidfd, .events = POLLIN};
    if (poll(&pfd, 1, 0) != 0) {
        confirmed_forget();
        return 0;
    }
    return confirmed.pid;
}

static void confirm(const char *data_dir, const char *pid_file, int pid)
{
    confirmed_forget();
    struct stat st;
    if (strlen(data_dir) >= sizeof confirmed.data_dir || stat(pid_file, &st) != 0) {
        return;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        return; /* exited meanwhile, or no pidfd: every question looks it up */
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    rpg_fmt(confirmed.data_dir, sizeof confirmed.data_dir, "%s", data_dir);
    confirmed.dev = st.st_dev;
    confirmed.ino = st.st_ino;
    confirmed.pid = pid;
    confirmed.pidfd = fd;
}

/* Line 8 of postmaster.pid (the server's status) from buf into status. */
static void status_line(const char *buf, char *status, size_t size)
{
    const char *line = buf;
    for (int i = 1; i < 8 && line != NULL; i++) {
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    if (line != NULL && size > 0) {
        rpg_fmt(status, size, "%.*s", (int)strcspn(line, " \n"), line);
    }
}

int pg_postmaster_pid_in(const char *data_dir, char *status, size_t size)
{
    char path[PATH_MAX + 32], buf[1024];
    rpg_fmt(path, sizeof path, "%s/postmaster.pid", data_dir);
    if (size > 0) {
        status[0] = '\0';
    }
    int known = confirmed_pid(data_dir, path);
    if (known > 0 && size == 0) {
        return known;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return find_postmaster(data_dir);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    long pid = strtol(buf, NULL, 10);
    if (known > 0 && pid == known) {
        status_line(buf, status, size);
        return known;
    }
    /* The file only names a number; whether that is this directory's postmaster the process
     * table says (a killed server's number may belong to any program by now, and the fence
     * signals what this returns). */
    char dir[PATH_MAX];
    if (pid <= 0 || pid > INT32_MAX || !proc_alive((int)pid) || realpath(data_dir, dir) == NULL ||
        !works_in(pid, dir) || !is_postgres(pid)) {
        confirmed_forget();
        return find_postmaster(data_dir);
    }
    confirm(data_dir, path, (int)pid);
    status_line(buf, status, size);
    return (int)pid;
}

static int postmaster_alive(const struct pg *p, char *status, size_t size)
{
    return pg_postmaster_pid_in(p->conf->postgresql.data_dir, status, size);
}

int pg_postmaster_pid(const struct pg *p)
{
    return postmaster_alive(p, NULL, 0);
}

bool pg_is_orphan_child(int pid)
{
    char path[64], buf[16] = "";
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* A postmaster keeps the arguments it was started with; its children retitle themselves
     * "postgres: ...". */
    return strncmp(buf, "postgres: ", 10) == 0;
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
        path_in(p, "standby.signal", path, sizeof path);
        signal = file_exists(path);
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
    rpg_fmt(why, size, "%s", storage_error);
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

static void rewind_retry_left(struct pg *p)
{
    rpg_msec now = uv_now(p->loop);
    p->obs.rewind_retry_ms = p->rewind_retry_at > now ? p->rewind_retry_at - now : 0;
}

static void observe(struct pg *p)
{
    if (p->closing) {
        return;
    }
    rewind_retry_left(p);
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
    path_in(p, "PG_VERSION", path, sizeof path);
    if (!file_exists(path)) {
        if (p->conn != NULL) {
            conn_drop(p, NULL);
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
    if (p->postmaster_pid == 0) {
        if (p->conn != NULL) {
            conn_drop(p, NULL);
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
            char *sql = p->pending_sql;
            p->pending_sql = NULL;
            p->busy_kind = QUERY_CONTROL;
            send_query(p, sql);
            free(sql);
        } else {
            p->busy_kind = QUERY_OBSERVE;
            send_query(p, OBSERVE_SQL);
        }
        break;
    default: break;
    }
}

static void on_tick(uv_timer_t *t)
{
    LOOPWATCH_SPAN("postgresql observe", observe(t->data));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    LOOPWATCH_SPAN("postgresql connection", poll_step(h, status, events));
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
static void rejoin_stage(struct pg *p, enum pg_rejoin_stage stage, const char *fmt, ...)
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
    }
    if (op == PG_OP_FOLLOW || op == PG_OP_START) {
        /* The detach bound counts from the re-point. */
        p->receiver_since = 0;
    }
    p->controldata_valid = false;
    p->epoch++;
    pg_done_cb cb = p->done_cb;
    p->done_cb = NULL;
    if (rc != 0) {
        log_debug("%s failed: %s", pg_op_name(op), msg);
        if (op == PG_OP_REWIND && p->rewind_retryable) {
            p->obs.rewind_retries++;
            rpg_msec delay = pg_rewind_retry_delay(p->obs.rewind_retries);
            p->rewind_retry_at = uv_now(p->loop) + delay;
            rewind_retry_left(p);
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
            rewind_retry_left(p);
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

static int run(struct pg *p, char *const argv[], unsigned timeout_ms)
{
    char errmsg[RPG_ERRMSG_SIZE];
    char *env[] = {"LC_ALL=C", NULL};
    p->proc_launches = false;
    int rv = proc_run(&p->proc, p->loop, argv, env, timeout_ms, on_proc, p, errmsg);
    if (rv != 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", errmsg);
    }
    return rv;
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
    observe(p);
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
    if (pid <= 0 || pid > INT32_MAX || !file_exists(proc) || pid_working_in(data_dir) != 0) {
        return;
    }
    const char *what = parent_of(pid) == 0 ? "has exited and is not reaped yet"
                       : !is_postgres(pid) ? "is another program now"
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
    path_in(p, "postmaster.pid", path, sizeof path);
    drop_stale_lock(path, p->conf->postgresql.data_dir);
    /* The socket lock stays beside the data directory even when that directory is gone. */
    uint16_t port = 0;
    if (!param_given(p, "unix_socket_directories") &&
        conf_parse_addr(p->conf->postgresql.listen, NULL, &port) == 0) {
        char parent[PATH_MAX];
        socket_dir(p, parent, sizeof parent);
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
        if (file_exists(path)) {
            continue;
        }
        char text[256];
        rpg_fmt(text, sizeof text,
                "%s: a primary that was lost may have created timeline %u, so it is never "
                "created again\n",
                PG_RESERVED_TIMELINE_MARK, (unsigned)tli);
        int rv = write_file(path, text, 0600, errmsg);
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
    append(&buf, &len, &cap, "CREATE ROLE \"");
    for (const char *s = c->postgresql.replication_name; *s; s++) {
        append(&buf, &len, &cap, *s == '"' ? "\"\"" : "%c", *s);
    }
    append(&buf, &len, &cap, "\" WITH REPLICATION LOGIN");
    if (c->postgresql.replication_password[0] != '\0') {
        append(&buf, &len, &cap, " PASSWORD '");
        for (const char *s = c->postgresql.replication_password; *s; s++) {
            append(&buf, &len, &cap, *s == '\'' ? "''" : "%c", *s);
        }
        append(&buf, &len, &cap, "'");
    }
    return buf;
}

static char *slots_sql(const struct pg *p)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char name[FSM_NAME_MAX];
    append(&buf, &len, &cap,
           "SELECT pg_drop_replication_slot(slot_name) FROM "
           "pg_replication_slots WHERE slot_name LIKE 'raftpg\\_%%' AND NOT "
           "active AND slot_name NOT IN (''");
    for (unsigned i = 0; i < p->n_slot_ids; i++) {
        ha_slot_name(p->slot_ids[i], name, sizeof name);
        append(&buf, &len, &cap, ", '%s'", name);
    }
    append(&buf, &len, &cap, ");");
    for (unsigned i = 0; i < p->n_slot_ids; i++) {
        ha_slot_name(p->slot_ids[i], name, sizeof name);
        append(&buf, &len, &cap,
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
        return rpg_err(errmsg, RPG_EEXIST,
                       "data directory %s must be cloned again, but the one moved aside earlier "
                       "is still at %s (%s): look at it and remove it, or set "
                       "postgresql.remove_data_directory_on_rewind_failure",
                       dir, aside, reason_path);
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
    int rv = write_file(reason_path, text, 0600, errmsg);
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
    int rv = conninfo_for(p, &p->upstream, false, ci, sizeof ci, errmsg);
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
    rejoin_stage(p, PG_REJOIN_CHECKPOINT_SOURCE, "does %s's control file show its timeline?",
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
            rejoin_stage(p, PG_REJOIN_CRASH_RECOVER,
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
            if ((rv = conninfo_for(p, &p->upstream, false, ci, sizeof ci, errmsg)) != 0) {
                return rv;
            }
            rpg_fmt(src, sizeof src, "--source-server=%s", ci);
            bin_path(p, "pg_rewind", bin, sizeof bin);
            pg_rewind_args(c, bin, src, argv);
            rejoin_stage(p, PG_REJOIN_REWIND, "pg_rewind from %s (%s) on timeline %u%s",
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
        rejoin_stage(p, PG_REJOIN_VERIFY_TIMELINE, "is %s on timeline %u now?", dd,
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
        rejoin_stage(p, PG_REJOIN_START_STANDBY, "timeline %u; starting as a standby of %s",
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
        if ((running = pid_working_in(dd)) != 0) {
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
            path_in(p, signals[i], sig, sizeof sig);
            if (unlink(sig) == 0) {
                log_info("rewind: removed %s so that the directory can be recovered", signals[i]);
            }
        }
        rejoin_stage(p, PG_REJOIN_CHECK, "pg_controldata: shut down cleanly, rewind possible?");
        if (run_controldata(p) != 0) {
            return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
        }
        return 1;
    }
    }
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

    if (rc != 0) {
        if (p->op == PG_OP_START || (p->op == PG_OP_BOOTSTRAP && step == 2) ||
            ((p->op == PG_OP_CLONE || p->op == PG_OP_REINIT || p->op == PG_OP_REWIND) &&
             p->standby && step >= 10)) {
            char reason[RPG_ERRMSG_SIZE];
            log_reason(p, reason, sizeof reason);
            p->obs.start_failures++;
            if (reason[0] != '\0') {
                rpg_fmt(buf, sizeof buf, "%s (server log: %s)", msg, reason);
                msg = buf;
            }
        }
        if (p->op == PG_OP_BOOTSTRAP && step == 1) {
            /* initdb failed: its password file goes too. */
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            unlink(pwfile);
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
        case 0: {
            if ((rv = mkdir_parent(dd, errmsg)) != 0) {
                break;
            }
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            rpg_fmt(buf, sizeof buf, "%s\n", c->postgresql.superuser_password);
            if (c->postgresql.superuser_password[0] != '\0' &&
                (rv = write_file(pwfile, buf, 0600, errmsg)) != 0) {
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
        case 1: {
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            unlink(pwfile);
            if ((rv = write_config(p, false, NULL, errmsg)) != 0) {
                break;
            }
            log_info("bootstrap: starting postgresql as primary");
            if (pg_ctl_start(p) != 0) {
                rv = RPG_EIO;
                rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
                break;
            }
            return;
        }
        case 2:
            p->obs.start_failures = 0;
            control_sql(p, roles_sql(p));
            return;
        default:
            log_info("bootstrap: roles created");
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
            if ((rv = write_config(p, p->standby, p->upstream.name[0] ? &p->upstream : NULL,
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
            rejoin_stage(p, PG_REJOIN_REMOVE, "postgresql.%s: %s", key,
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
            rejoin_stage(p, PG_REJOIN_MOVE_ASIDE, "%s",
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
            if ((rv = mkdir_parent(dd, errmsg)) != 0) {
                break;
            }
            char ci[2048], slot[FSM_NAME_MAX];
            if ((rv = conninfo_for(p, &p->upstream, true, ci, sizeof ci, errmsg)) != 0) {
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
            rejoin_stage(p, PG_REJOIN_CLONE, "pg_basebackup from %s", p->upstream.name);
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
        rejoin_stage(p, PG_REJOIN_START_STANDBY, "starting as a standby of %s", p->upstream.name);
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
            if ((rv = write_config(p, true, &p->upstream, errmsg)) != 0 ||
                (rv = reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_SET_SYNC:
        if (step == 0) {
            if (pg_postmaster_pid(p) == 0) {
                /* Not running: the next start writes it. */
                op_finish(p, 0, NULL);
                return;
            }
            if ((rv = write_sync_settings(p, errmsg)) != 0 || (rv = reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
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
    read_upstream(p);
    uv_timer_start(&p->tick, on_tick, 0, PG_OBSERVE_INTERVAL_MS);
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
    conn_drop(p, NULL);
    free(p->pending_sql);
    p->pending_sql = NULL;
    p->pending_cb = NULL;
    uv_close((uv_handle_t *)&p->tick, handle_closed);
    uv_close((uv_handle_t *)&p->deadline, handle_closed);
    uv_close((uv_handle_t *)&p->sql_timer, handle_closed);
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
