/* pg: the configuration writer (raftpg.conf, signal files, the upstream) and small file
 * helpers (pg_int.h). */
#include "pg_int.h"

/* ---- small file helpers ---------------------------------------------------------------------- */

void pg_path_in(const struct pg *p, const char *file, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s/%s", p->conf->postgresql.data_dir, file);
}

bool pg_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The last failure of the agent's own writes that says the storage refuses them (full,
 * read-only, not permitted, failing), "" after a write succeeded: one of the reasons a primary
 * is unwritable (ha_pg.unwritable). One agent, one data directory: file scope will do. */
char pg_storage_error[HA_WHY_MAX];

static int write_failed(const char *what, const char *path, int e, char *errmsg)
{
    if (e == ENOSPC || e == EROFS || e == EACCES || e == EPERM || e == EIO || e == EDQUOT) {
        rpg_fmt(pg_storage_error, sizeof pg_storage_error, "the agent cannot %s %s: %s", what, path,
                strerror(e));
    }
    return rpg_err(errmsg, RPG_EIO, "cannot %s %s: %s", what, path, strerror(e));
}

/* Configuration files: written to a temporary file renamed over the target, so a crash never
 * leaves half a file. */
int pg_write_file(const char *path, const char *text, mode_t mode, char *errmsg)
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
    pg_storage_error[0] = '\0';
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
void pg_log_reason(const struct pg *p, char *buf, size_t size)
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

int pg_mkdir_parent(const char *path, char *errmsg)
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

bool pg_param_given(const struct pg *p, const char *key)
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
    if ((rv = pg_mkdir_parent(path, errmsg)) == 0) {
        rv = pg_write_file(path, text, 0600, errmsg);
    }
out:
    return rv;
}

/* conninfo for a connection to up's PostgreSQL as user. A configured password reaches libpq
 * through the agent's password file, never in the conninfo: the conninfo becomes an argument
 * of pg_basebackup and pg_rewind, which every local user sees. */
int pg_conninfo_for(const struct pg *p, const struct pg_upstream *up, bool replication, char *buf,
                    size_t size, char *errmsg)
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

int pg_superuser_url(const struct pg *p, char *url, size_t size, char *passfile, size_t psize,
                     char *errmsg)
{
    const struct conf *c = p->conf;
    char host[16] = "", user[3 * CONF_NAME_MAX + 1];
    uint16_t port = 0;
    conf_parse_addr(c->postgresql.connect_address, host, &port);
    /* RFC 3986 userinfo: unreserved characters as they are, the rest percent-encoded. */
    size_t n = 0;
    for (const unsigned char *s = (const unsigned char *)c->postgresql.superuser_name; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '.' || *s == '_' || *s == '~') {
            user[n++] = (char)*s;
        } else {
            n += (size_t)snprintf(user + n, sizeof user - n, "%%%02X", *s);
        }
    }
    user[n] = '\0';
    rpg_fmt(url, size, "postgresql://%s@%s:%u/postgres", user, host, (unsigned)port);
    rpg_fmt(passfile, psize, "%s", c->postgresql.passfile);
    if (c->postgresql.superuser_password[0] != '\0') {
        int rv = write_passfile(p, errmsg);
        if (rv != 0) {
            return rv;
        }
        passfile_path(p, passfile, psize);
    }
    return 0;
}

void pg_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
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
void pg_socket_dir(const struct pg *p, char *buf, size_t size)
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
    pg_append(buf, len, cap, SYNC_BLOCK_BEGIN "synchronous_standby_names = %s\n", qs);
    if (p->sync_commit[0] != '\0') {
        pg_append(buf, len, cap, "synchronous_commit = '%s'\n", p->sync_commit);
    }
    pg_append(buf, len, cap, SYNC_BLOCK_END);
    return 0;
}

/* Replaces the block from begin to end of raftpg.conf with block (which carries its own
 * markers) and leaves every other line as it is: what a running server streams from and whether
 * it is a standby are its own to say (rule 10), not this process's memory of what it wrote. A
 * file without the block gets it at the end (the last setting wins). */
static int rewrite_block(struct pg *p, const char *begin, const char *end, const char *block,
                         char *errmsg)
{
    char path[PATH_MAX + 32], line[8192];
    pg_path_in(p, CONF_FILE, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool in_block = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strcmp(line, begin) == 0) {
            in_block = true;
        } else if (in_block) {
            in_block = strcmp(line, end) != 0;
        } else {
            pg_append(&buf, &len, &cap, "%s", line);
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    int rv = 0;
    if (failed) {
        rv = rpg_err(errmsg, RPG_EIO, "cannot read %s", path);
    } else {
        pg_append(&buf, &len, &cap, "%s", block);
        rv = buf != NULL ? pg_write_file(path, buf, 0600, errmsg)
                         : rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    free(buf);
    return rv;
}

int pg_write_sync_settings(struct pg *p, char *errmsg)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rv = append_sync_block(p, &buf, &len, &cap, errmsg);
    if (rv == 0) {
        rv = buf != NULL ? rewrite_block(p, SYNC_BLOCK_BEGIN, SYNC_BLOCK_END, buf, errmsg)
                         : rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    free(buf);
    return rv;
}

static int write_hba(struct pg *p, char *errmsg);

int pg_write_params(struct pg *p, char *errmsg)
{
    char *block = malloc(PG_PARAMS_BLOCK_MAX);
    if (block == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    int rv = pg_params_block(p->conf, p->params, p->n_params, block, PG_PARAMS_BLOCK_MAX)
                 ? rewrite_block(p, PG_PARAMS_BEGIN, PG_PARAMS_END, block, errmsg)
                 : rpg_err(errmsg, RPG_EINVAL, "dynamic parameters too long");
    free(block);
    return rv != 0 ? rv : write_hba(p, errmsg);
}

/* pg_hba.conf from the member's own postgresql.pg_hba, else from the dynamic configuration's;
 * with neither, the file is left as it is. */
static int write_hba(struct pg *p, char *errmsg)
{
    const struct conf *c = p->conf;
    char path[PATH_MAX + 32];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (c->postgresql.n_pg_hba > 0) {
        pg_append(&buf, &len, &cap, "# written by raftpg from postgresql.pg_hba: edits are lost\n");
        for (unsigned i = 0; i < c->postgresql.n_pg_hba; i++) {
            pg_append(&buf, &len, &cap, "%s\n", c->postgresql.pg_hba[i]);
        }
    } else if (p->n_hba > 0) {
        pg_append(&buf, &len, &cap,
                  "# written by raftpg from the dynamic configuration's postgresql.pg_hba: "
                  "edits are lost\n");
        for (unsigned i = 0; i < p->n_hba; i++) {
            pg_append(&buf, &len, &cap, "%s\n", p->hba[i]);
        }
    } else {
        return 0;
    }
    if (buf == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory writing pg_hba.conf");
    }
    pg_path_in(p, "pg_hba.conf", path, sizeof path);
    int rv = pg_write_file(path, buf, 0600, errmsg);
    free(buf);
    return rv;
}

/* Writes raftpg.conf (included last by postgresql.conf), pg_hba.conf and, for a server that is
 * not running, the standby signal: a running server read it at its start, and a running primary
 * must never get one (rule 10). */
int pg_write_config(struct pg *p, bool standby, const struct pg_upstream *up, char *errmsg)
{
    const struct conf *c = p->conf;
    char path[PATH_MAX + 32], host[16] = "", q[2 * PATH_MAX + 3];
    uint16_t port = 0;
    conf_parse_addr(c->postgresql.listen, host, &port);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rv = 0;

    pg_append(&buf, &len, &cap, "# written by raftpg on every start: edits are lost\n");
    pg_append(&buf, &len, &cap, "%s%s\n", UPSTREAM_MARK, standby && up != NULL ? up->name : "");
    /* Defaults that the configuration may override. */
    if (!pg_param_given(p, "wal_retrieve_retry_interval")) {
        /* A standby acts on a promote request only after this (DESIGN.md §9). */
        pg_append(&buf, &len, &cap, "wal_retrieve_retry_interval = '50ms'\n");
    }
    if (!pg_param_given(p, "unix_socket_directories")) {
        char parent[PATH_MAX];
        pg_socket_dir(p, parent, sizeof parent);
        pg_conf_quote(parent, q, sizeof q);
        pg_append(&buf, &len, &cap, "unix_socket_directories = %s\n", q);
    }
    if (!pg_param_given(p, "hot_standby")) {
        pg_append(&buf, &len, &cap, "hot_standby = on\n");
    }
    if (!pg_param_given(p, "wal_log_hints")) {
        pg_append(&buf, &len, &cap, "wal_log_hints = on\n");
    }
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        char qv[2048];
        if (!pg_conf_quote(c->postgresql.parameters[i].value, qv, sizeof qv)) {
            rv = rpg_err(errmsg, RPG_EINVAL, "postgresql.parameters.%s: value too long",
                         c->postgresql.parameters[i].key);
            goto out;
        }
        pg_append(&buf, &len, &cap, "%s = %s\n", c->postgresql.parameters[i].key, qv);
    }
    {
        /* After the member's own parameters, which win unless the parameter is cluster-wide
         * (pg_params_block leaves them out). */
        char *block = malloc(PG_PARAMS_BLOCK_MAX);
        if (block == NULL ||
            !pg_params_block(c, p->params, p->n_params, block, PG_PARAMS_BLOCK_MAX)) {
            free(block);
            rv = rpg_err(errmsg, RPG_EINVAL, "dynamic parameters too long");
            goto out;
        }
        pg_append(&buf, &len, &cap, "%s", block);
        free(block);
    }
    if (c->postgresql.restore_command[0] != '\0') {
        /* postgresql.recovery_conf.restore_command: after the parameters, so it wins. */
        char qr[2 * sizeof c->postgresql.restore_command + 3];
        pg_conf_quote(c->postgresql.restore_command, qr, sizeof qr);
        pg_append(&buf, &len, &cap, "restore_command = %s\n", qr);
    }
    /* What raftpg owns comes last, so it wins. */
    pg_append(&buf, &len, &cap, "listen_addresses = '%s'\nport = %u\n", host, (unsigned)port);
    pg_conf_quote(c->scope, q, sizeof q);
    pg_append(&buf, &len, &cap, "cluster_name = %s\n", q);
    pg_append(&buf, &len, &cap, "recovery_target_timeline = 'latest'\n");
    if ((rv = append_sync_block(p, &buf, &len, &cap, errmsg)) != 0) {
        goto out;
    }
    if (standby && up != NULL) {
        char ci[2048], qci[4200], slot[FSM_NAME_MAX];
        if ((rv = pg_conninfo_for(p, up, true, ci, sizeof ci, errmsg)) != 0) {
            goto out;
        }
        pg_conf_quote(ci, qci, sizeof qci);
        pg_append(&buf, &len, &cap, "primary_conninfo = %s\n", qci);
        if (up->slot_id != 0) {
            ha_slot_name(up->slot_id, slot, sizeof slot);
            pg_append(&buf, &len, &cap, "primary_slot_name = '%s'\n", slot);
        } else {
            pg_append(&buf, &len, &cap, "primary_slot_name = ''\n");
        }
    } else {
        pg_append(&buf, &len, &cap, "primary_conninfo = ''\nprimary_slot_name = ''\n");
    }
    if (buf == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory writing %s", CONF_FILE);
    }
    pg_path_in(p, CONF_FILE, path, sizeof path);
    if ((rv = pg_write_file(path, buf, 0600, errmsg)) != 0) {
        goto out;
    }

    /* postgresql.conf includes raftpg.conf last; clones and rewinds copy the line along. */
    pg_path_in(p, "postgresql.conf", path, sizeof path);
    {
        char *main = NULL;
        size_t mlen = 0, mcap = 0;
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char line[4096];
            while (fgets(line, sizeof line, f) != NULL) {
                pg_append(&main, &mlen, &mcap, "%s", line);
            }
            fclose(f);
        }
        const char *inc = "include_if_exists = '" CONF_FILE "'";
        if (main == NULL || strstr(main, inc) == NULL) {
            pg_append(&main, &mlen, &mcap, "%s%s\n", mlen > 0 && main[mlen - 1] != '\n' ? "\n" : "",
                      inc);
            rv = main != NULL ? pg_write_file(path, main, 0600, errmsg)
                              : rpg_err(errmsg, RPG_ENOMEM, "out of memory");
        }
        free(main);
        if (rv != 0) {
            goto out;
        }
    }

    if ((rv = write_hba(p, errmsg)) != 0) {
        goto out;
    }

    pg_path_in(p, "standby.signal", path, sizeof path);
    if (pg_postmaster_pid(p) != 0) {
        /* Running: the file is read only at a start; left as it is. */
    } else if (standby) {
        if ((rv = pg_write_file(path, "", 0600, errmsg)) != 0) {
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
void pg_read_upstream(struct pg *p)
{
    char path[PATH_MAX + 32], line[512];
    pg_path_in(p, CONF_FILE, path, sizeof path);
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
