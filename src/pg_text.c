/* pg: quoting and parsing, pure (pg_int.h). */
#include <math.h>

#include "pg_int.h"

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

bool pg_rewind_copy_size(const char *output, uint64_t *copy_mb, uint64_t *total_mb)
{
    const char *at = strstr(output, "need to copy ");
    unsigned long long n = 0, m = 0;
    if (at == NULL ||
        sscanf(at, "need to copy %llu MB (total source directory size is %llu MB)", &n, &m) != 2) {
        return false;
    }
    *copy_mb = n;
    *total_mb = m;
    return true;
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

/* ---- the dynamic parameters (pure) ----------------------------------------------------------- */

struct owned_param {
    const char *name; /* exact name, or a prefix when it ends in '*' */
    const char *why;
};

/* What raftpg writes itself, or what its agent, fence and streaming depend on. */
static const struct owned_param OWNED[] = {
    {"listen_addresses", "raftpg writes it from postgresql.listen"},
    {"port", "raftpg writes it from postgresql.listen"},
    {"cluster_name", "raftpg writes it from scope"},
    {"hot_standby", "raftpg keeps it on: the agent observes its standbys with queries"},
    {"unix_socket_directories",
     "the agent connects through it: set it in each member's postgresql.parameters"},
    {"primary_conninfo", "raftpg points each standby at its upstream"},
    {"primary_slot_name", "raftpg names each standby's replication slot"},
    {"synchronous_standby_names",
     "raftpg manages it (synchronous_mode and synchronous_node_count)"},
    {"synchronous_commit", "set it with the synchronous_commit key of the dynamic configuration"},
    {"recovery_target_timeline", "raftpg sets it to latest"},
    {"recovery_target*", "a recovery target would stop a standby's replay"},
    {"restore_command", "set it in each member's postgresql.recovery_conf"},
    {"promote_trigger_file", "raftpg promotes standbys itself"},
    {"default_transaction_read_only", "raftpg's fence sets it on a primary that must stop writes"},
    {"data_directory", "a file location: set it in each member's configuration"},
    {"config_file", "a file location: set it in each member's configuration"},
    {"hba_file", "a file location: set it in each member's configuration"},
    {"ident_file", "a file location: set it in each member's configuration"},
    {"include", "a directive, not a parameter"},
    {"include_dir", "a directive, not a parameter"},
    {"include_if_exists", "a directive, not a parameter"},
};

const char *pg_param_owned(const char *name)
{
    for (size_t i = 0; i < sizeof OWNED / sizeof OWNED[0]; i++) {
        size_t n = strlen(OWNED[i].name);
        bool prefix = OWNED[i].name[n - 1] == '*';
        if (prefix ? strncasecmp(name, OWNED[i].name, n - 1) == 0
                   : strcasecmp(name, OWNED[i].name) == 0) {
            return OWNED[i].why;
        }
    }
    return NULL;
}

/* Patroni's list of the settings it passes on the command line from the dynamic configuration,
 * less those raftpg owns: a standby cannot run with less than its primary has of the first
 * ones, and the WAL settings must agree for streaming and pg_rewind. */
static const char *const CLUSTER_WIDE[] = {
    "max_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_replication_slots",
    "max_wal_senders",
    "max_worker_processes",
    "track_commit_timestamp",
    "wal_keep_size",
    "wal_level",
    "wal_log_hints",
};

bool pg_param_cluster_wide(const char *name)
{
    for (size_t i = 0; i < sizeof CLUSTER_WIDE / sizeof CLUSTER_WIDE[0]; i++) {
        if (strcasecmp(name, CLUSTER_WIDE[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool local_param(const struct conf *c, const char *name)
{
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        if (strcasecmp(c->postgresql.parameters[i].key, name) == 0) {
            return true;
        }
    }
    return false;
}

bool pg_params_block(const struct conf *c, const struct fsm_param *ps, unsigned n, char *buf,
                     size_t size)
{
    size_t len = 0;
    int w = snprintf(buf, size, "%s", PG_PARAMS_BEGIN);
    if (w < 0 || (size_t)w >= size) {
        return false;
    }
    len = (size_t)w;
    for (unsigned i = 0; i < n; i++) {
        char q[2 * FSM_PARAM_VALUE_MAX + 3];
        if (!pg_conf_quote(ps[i].value, q, sizeof q)) {
            return false;
        }
        if (local_param(c, ps[i].name) && !pg_param_cluster_wide(ps[i].name)) {
            w = snprintf(buf + len, size - len,
                         "# %s: set by this member's postgresql.parameters, which win\n",
                         ps[i].name);
        } else {
            w = snprintf(buf + len, size - len, "%s = %s\n", ps[i].name, q);
        }
        if (w < 0 || (size_t)w >= size - len) {
            return false;
        }
        len += (size_t)w;
    }
    w = snprintf(buf + len, size - len, "%s", PG_PARAMS_END);
    return w >= 0 && (size_t)w < size - len;
}

/* PostgreSQL's parse_bool: a unique prefix of true, false, yes, no, on (two letters), off (two
 * letters), or 1 or 0, without case, surrounding blanks allowed. */
static bool setting_bool(const char *v)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n == 0) {
        return false;
    }
    static const char *const words[] = {"true", "false", "yes", "no"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (n <= strlen(words[i]) && strncasecmp(v, words[i], n) == 0) {
            return true;
        }
    }
    if (n >= 2 &&
        ((n <= 2 && strncasecmp(v, "on", n) == 0) || (n <= 3 && strncasecmp(v, "off", n) == 0))) {
        return true;
    }
    return n == 1 && (v[0] == '1' || v[0] == '0');
}

/* Units PostgreSQL's GUC code accepts, by the size of each in the kind's smallest unit. */
struct setting_unit {
    const char *name;
    double size;
};
static const struct setting_unit memory_units[] = {
    {"B", 1.0},
    {"kB", 1024.0},
    {"MB", 1024.0 * 1024},
    {"GB", 1024.0 * 1024 * 1024},
    {"TB", 1024.0 * 1024 * 1024 * 1024},
};
static const struct setting_unit time_units[] = {
    {"us", 1.0}, {"ms", 1e3}, {"s", 1e6}, {"min", 60e6}, {"h", 3600e6}, {"d", 86400e6},
};

/* The size of one of a setting's units ("8kB", "16MB", "ms", ...; pg_settings.unit) in its
 * kind's smallest unit, with that kind's table; 0 when it has no unit or one not known here. */
static double setting_unit_size(const char *unit, const struct setting_unit **table, size_t *n)
{
    char *end = NULL;
    double mult = 1.0;
    if (unit[0] >= '0' && unit[0] <= '9') {
        mult = strtod(unit, &end);
        unit = end;
    }
    for (size_t i = 0; i < sizeof memory_units / sizeof memory_units[0]; i++) {
        if (strcmp(unit, memory_units[i].name) == 0) {
            *table = memory_units;
            *n = sizeof memory_units / sizeof memory_units[0];
            return mult * memory_units[i].size;
        }
    }
    for (size_t i = 0; i < sizeof time_units / sizeof time_units[0]; i++) {
        if (strcmp(unit, time_units[i].name) == 0) {
            *table = time_units;
            *n = sizeof time_units / sizeof time_units[0];
            return mult * time_units[i].size;
        }
    }
    return 0.0;
}

/* A number and an optional unit of the setting's kind (PostgreSQL's parse_int and parse_real:
 * strtol with base 0, else strtod; memory units B kB MB GB TB, time units us ms s min h d), read
 * into *out in the setting's own unit (an integer setting's rounded as PostgreSQL does). */
static bool setting_number(const char *v, bool integer, const char *unit, double *out)
{
    char *end = NULL;
    errno = 0;
    double num = (double)strtol(v, &end, 0);
    if (end == v || errno == ERANGE || !integer || (*end == '.' || *end == 'e' || *end == 'E')) {
        errno = 0;
        num = strtod(v, &end);
        if (end == v || errno == ERANGE) {
            return false;
        }
    }
    while (*end == ' ' || *end == '\t') {
        end++;
    }
    if (*end == '\0') {
        *out = integer ? rint(num) : num;
        return true;
    }
    const struct setting_unit *units = NULL;
    size_t n_units = 0;
    double base = strcmp(unit, "-") != 0 ? setting_unit_size(unit, &units, &n_units) : 0.0;
    if (base == 0.0) {
        return false;
    }
    size_t len = strcspn(end, " \t");
    for (size_t i = 0; i < n_units; i++) {
        if (strlen(units[i].name) == len && strncmp(end, units[i].name, len) == 0) {
            end += len;
            while (*end == ' ' || *end == '\t') {
                end++;
            }
            *out = num * units[i].size / base;
            if (integer) {
                *out = rint(*out);
            }
            return *end == '\0';
        }
    }
    return false;
}

int pg_setting_check(const char *settings, const char *name, const char *value, char *context,
                     size_t context_size, char *why, size_t why_size)
{
    if (settings == NULL) {
        return -1;
    }
    size_t n = strlen(name);
    for (const char *e = settings; *e != '\0';) {
        const char *eol = strchr(e, '\n');
        size_t len = eol != NULL ? (size_t)(eol - e) : strlen(e);
        if (len > n && strncmp(e, name, n) == 0 && e[n] == ' ') {
            char line[4096], *save = NULL;
            rpg_fmt(line, sizeof line, "%.*s", (int)len, e);
            (void)strtok_r(line, " ", &save);
            const char *ctx = strtok_r(NULL, " ", &save);
            const char *type = strtok_r(NULL, " ", &save);
            const char *unit = strtok_r(NULL, " ", &save);
            const char *min = strtok_r(NULL, " ", &save);
            const char *max = strtok_r(NULL, " ", &save);
            const char *enumvals = save != NULL ? save : "";
            if (ctx == NULL || type == NULL || unit == NULL || min == NULL || max == NULL) {
                return 0;
            }
            rpg_fmt(context, context_size, "%s", ctx);
            bool ok = true;
            if (strcmp(type, "bool") == 0) {
                ok = setting_bool(value);
            } else if (strcmp(type, "integer") == 0 || strcmp(type, "real") == 0) {
                double num = 0.0;
                ok = setting_number(value, type[0] == 'i', unit, &num);
                /* PostgreSQL refuses the whole file when one value is out of range, so a value
                 * that reads but does not fit would stop every member's server from starting. */
                if (ok && strcmp(min, "-") != 0 && strcmp(max, "-") != 0 &&
                    (num < strtod(min, NULL) || num > strtod(max, NULL))) {
                    rpg_fmt(
                        why, why_size,
                        "invalid value \"%s\": %.15g%s%s is outside the valid range %s .. %s%s%s",
                        value, num, strcmp(unit, "-") != 0 ? " " : "",
                        strcmp(unit, "-") != 0 ? unit : "", min, max,
                        strcmp(unit, "-") != 0 ? " " : "", strcmp(unit, "-") != 0 ? unit : "");
                    return RPG_EINVAL;
                }
            } else if (strcmp(type, "enum") == 0) {
                ok = false;
                char vals[4096], *s2 = NULL;
                rpg_fmt(vals, sizeof vals, "%s", enumvals);
                for (char *t = strtok_r(vals, "|", &s2); t != NULL && !ok;
                     t = strtok_r(NULL, "|", &s2)) {
                    ok = strcasecmp(t, value) == 0;
                }
            }
            if (!ok) {
                if (strcmp(type, "enum") == 0) {
                    rpg_fmt(why, why_size, "invalid value \"%s\" (expected one of: %s)", value,
                            enumvals);
                } else {
                    rpg_fmt(why, why_size, "invalid value \"%s\": expected %s%s%s", value,
                            strcmp(type, "bool") == 0      ? "a boolean"
                            : strcmp(type, "integer") == 0 ? "an integer"
                                                           : "a number",
                            strcmp(unit, "-") != 0 ? " in units of " : "",
                            strcmp(unit, "-") != 0 ? unit : "");
                }
                return RPG_EINVAL;
            }
            return 1;
        }
        e += len + (eol != NULL ? 1 : 0);
    }
    return 0;
}
