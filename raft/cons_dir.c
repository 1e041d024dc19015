/* The Raft directory apart from the running server (cons_uv.c): the identity file (which cluster
 * and member the directory belongs to), whether it holds Raft state, the checks it must pass
 * before Raft starts on it (a recorded fault, leftover open segments, room for the log), and
 * the offline recovery from a lost majority (raft_recover with this member alone). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft/uv.h>

#include "raftpg/cons_uv.h"
#include "raftpg/storage.h"

#include "cons_uv_int.h"

#define IDENTITY_MAGIC "raftpg-identity 1"

/* ---- identity ---------------------------------------------------------------------------- */

int cons_mkdir_p(const char *dir, char *errmsg)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        return rpg_err(errmsg, RPG_EINVAL, "data directory path too long: %s", dir);
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return rpg_err(errmsg, RPG_EIO, "create directory %s: %s", tmp, strerror(errno));
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return rpg_err(errmsg, RPG_EIO, "create directory %s: %s", tmp, strerror(errno));
    }
    return 0;
}

/* True when dir has entries other than "." and ".." (raft_uv probe files are removed by it),
 * not counting the identity file (and its temporary) with skip_identity. Absent: false. */
static int dir_has_entries(const char *dir, bool skip_identity, bool *has, char *errmsg)
{
    *has = false;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        return rpg_err(errmsg, RPG_EIO, "open data directory %s: %s", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        /* The reserved record of a pending storage failure is no Raft state (cons_start makes
         * it before Raft writes anything). */
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, STORAGE_PROBE_FILE) == 0 ||
            strcmp(n, STORAGE_PENDING_FILE) == 0 ||
            (skip_identity &&
             (strcmp(n, CONS_IDENTITY_FILE) == 0 || strcmp(n, CONS_IDENTITY_FILE ".tmp") == 0))) {
            continue;
        }
        *has = true;
        break;
    }
    closedir(d);
    return 0;
}

int cons_identity_read(const char *dir, const char *scope, const char *name, uint64_t *id,
                       char *errmsg)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, CONS_IDENTITY_FILE);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno != ENOENT) {
            return rpg_err(errmsg, RPG_ECORRUPT, "cannot read %s: %s", path, strerror(errno));
        }
        bool has = false;
        int rv = dir_has_entries(dir, false, &has, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (has) {
            return rpg_err(errmsg, RPG_ECORRUPT,
                           "data directory %s is not empty but has no %s: it is foreign or "
                           "damaged; refusing to bootstrap over it (move it aside to start "
                           "afresh)",
                           dir, CONS_IDENTITY_FILE);
        }
        return rpg_err(errmsg, RPG_ENOTFOUND, "data directory %s is empty", dir);
    }
    char line[256];
    char got_scope[CONF_NAME_MAX] = "";
    char got_name[CONF_NAME_MAX] = "";
    uint64_t got_id = 0;
    bool magic = false;
    int lineno = 0;
    int rv = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (lineno == 1) {
            magic = strcmp(line, IDENTITY_MAGIC) == 0;
            if (!magic) {
                break;
            }
            continue;
        }
        if (strncmp(line, "scope=", 6) == 0 && n - 6 < sizeof got_scope) {
            memcpy(got_scope, line + 6, n - 6 + 1);
        } else if (strncmp(line, "name=", 5) == 0 && n - 5 < sizeof got_name) {
            memcpy(got_name, line + 5, n - 5 + 1);
        } else if (strncmp(line, "id=", 3) == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(line + 3, &end, 10);
            if (errno != 0 || end == line + 3 || *end != '\0' || v == 0) {
                rv = rpg_err(errmsg, RPG_ECORRUPT, "%s:%d: invalid id \"%s\"", path, lineno,
                             line + 3);
                break;
            }
            got_id = v;
        } else {
            rv = rpg_err(errmsg, RPG_ECORRUPT, "%s:%d: unexpected line \"%.64s\"", path, lineno,
                         line);
            break;
        }
    }
    fclose(f);
    if (rv != 0) {
        return rv;
    }
    if (!magic) {
        return rpg_err(errmsg, RPG_ECORRUPT, "%s: not a raftpg identity file", path);
    }
    if (got_scope[0] == '\0' || got_name[0] == '\0' || got_id == 0) {
        return rpg_err(errmsg, RPG_ECORRUPT, "%s: incomplete identity (scope, name and id needed)",
                       path);
    }
    if (strcmp(got_scope, scope) != 0 || strcmp(got_name, name) != 0) {
        return rpg_err(errmsg, RPG_ECORRUPT,
                       "data directory %s belongs to member \"%s\" of cluster \"%s\", not to "
                       "member \"%s\" of cluster \"%s\"",
                       dir, got_name, got_scope, name, scope);
    }
    *id = got_id;
    return 0;
}

int cons_identity_write(const char *dir, const char *scope, const char *name, uint64_t id,
                        char *errmsg)
{
    int rv = cons_mkdir_p(dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/%s", dir, CONS_IDENTITY_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "create %s: %s", tmp, strerror(errno));
    }
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\nscope=%s\nname=%s\nid=%" PRIu64 "\n", IDENTITY_MAGIC,
                     scope, name, id);
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rv;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rv;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int cons_has_raft_state(const char *dir, bool *has, char *errmsg)
{
    return dir_has_entries(dir, true, has, errmsg);
}

int cons_storage_check(const char *dir, size_t *segment_size, uint64_t *free_bytes, char *errmsg)
{
    /* A log that may have a gap, or leftover open segments, would be loaded at the wrong
     * indexes (storage.h). */
    int rv = storage_check_fault(dir, errmsg);
    if (rv == 0) {
        rv = storage_check_segments(dir, errmsg);
    }
    if (rv == 0) {
        /* A record of a pending failure that cannot be checked (cons_start reads it again). */
        struct storage_pending *p = malloc(sizeof *p);
        char side[PATH_MAX];
        storage_pending_side_path(dir, side, sizeof side);
        rv = p != NULL ? storage_pending_read(dir, p, errmsg)
                       : rpg_err(errmsg, RPG_ENOMEM, "out of memory");
        if (rv == 0) {
            rv = storage_pending_read_path(dir, side, p, errmsg);
        }
        free(p);
    }
    if (rv != 0) {
        return rv;
    }
    /* libraft preallocates open segments of a fixed size: one that does not fit means nothing
     * can be persisted at all. */
    uint64_t avail = 0, open_bytes = 0;
    char why[RPG_ERRMSG_SIZE];
    rv = storage_free_bytes(dir, &avail, errmsg);
    if (rv == 0) {
        rv = storage_open_bytes(dir, &open_bytes, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    avail += open_bytes;
    if (storage_segment_size(avail, segment_size, why) != 0) {
        return rpg_err(errmsg, RPG_EIO,
                       "raft directory %s is too small for the raft log: %s; give it more space",
                       dir, why);
    }
    *free_bytes = avail;
    return 0;
}

/* ---- recovery from a lost majority ------------------------------------------------------------
 */

struct recover_ctx {
    bool closed;
};

static void recover_closed(struct raft *r)
{
    ((struct recover_ctx *)r->data)->closed = true;
}

/* raft_init needs a state machine; raft_recover never applies anything through it. */
static int recover_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    return RAFT_INVALID;
}

int cons_recover(const struct conf *conf, uint64_t id, char *errmsg)
{
    const char *dir = conf->raft.data_dir;
    size_t segment_size = 0;
    uint64_t free_bytes = 0;
    int rv = cons_storage_check(dir, &segment_size, &free_bytes, errmsg);
    if (rv != 0) {
        return rv;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return rpg_err(errmsg, RPG_ENOMEM, "cannot create an event loop");
    }
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm = {.version = 1, .apply = recover_apply};
    struct recover_ctx ctx = {.closed = false};
    memset(&transport, 0, sizeof transport);
    memset(&io, 0, sizeof io);
    memset(&raft, 0, sizeof raft);
    /* The transport never listens here: raft_uv only needs one to be set. */
    rv = raft_uv_tcp_init(&transport, &loop);
    if (rv != 0) {
        uv_loop_close(&loop);
        return rpg_err(errmsg, RPG_ERAFT, "raft transport: %s", raft_strerror(rv));
    }
    rv = raft_uv_init(&io, &loop, dir, &transport);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft storage %s: %s", dir, io.errmsg);
        raft_uv_tcp_close(&transport);
        uv_loop_close(&loop);
        return RPG_ERAFT;
    }
    raft_uv_set_auto_recovery(&io, false);
    raft_uv_set_segment_size(&io, segment_size);
    rv = raft_init(&raft, &io, &fsm, id, conf->raft.listen);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft init: %s", raft_errmsg(&raft));
        raft_uv_close(&io);
        raft_uv_tcp_close(&transport);
        uv_loop_close(&loop);
        return RPG_ERAFT;
    }
    raft.data = &ctx;
    struct raft_configuration configuration;
    raft_configuration_init(&configuration);
    rv = raft_configuration_add(&configuration, id, conf->raft.listen, RAFT_VOTER);
    if (rv == 0) {
        rv = raft_recover(&raft, &configuration);
        if (rv != 0) {
            rpg_err(errmsg, RPG_ERAFT, "raft recover in %s: %s (%s)", dir, raft_strerror(rv),
                    raft_errmsg(&raft));
        }
    } else {
        rpg_err(errmsg, RPG_ERAFT, "raft configuration: %s", raft_strerror(rv));
    }
    raft_configuration_close(&configuration);
    raft_close(&raft, recover_closed);
    for (int i = 0; i < 10000 && !ctx.closed; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rv != 0 ? RPG_ERAFT : 0;
}
