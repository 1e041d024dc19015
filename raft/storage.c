#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/storage.h"

int storage_segment_size(uint64_t avail, size_t *size, char *errmsg)
{
    for (size_t s = STORAGE_SEGMENT_MAX; s >= STORAGE_SEGMENT_MIN; s /= 2) {
        if ((uint64_t)s * STORAGE_SEGMENTS_NEEDED <= avail) {
            *size = s;
            return 0;
        }
    }
    return rpg_err(errmsg, RPG_EIO,
                   "%" PRIu64 " bytes free, and even the smallest open segment (%u bytes) needs "
                   "%u bytes (%u segments)",
                   avail, STORAGE_SEGMENT_MIN, STORAGE_SEGMENT_MIN * STORAGE_SEGMENTS_NEEDED,
                   STORAGE_SEGMENTS_NEEDED);
}

unsigned storage_stale_segments(const struct storage_open_segment *segs, unsigned n, bool *stale)
{
    uint64_t top = 0;
    bool any = false;
    for (unsigned i = 0; i < n; i++) {
        stale[i] = false;
        if (segs[i].used && (!any || segs[i].counter > top)) {
            top = segs[i].counter;
            any = true;
        }
    }
    if (!any) {
        return 0;
    }
    /* Walk down from the newest used segment while the counters are contiguous (used or not:
     * a prepared segment between two used ones cannot exist, but a gap can). */
    uint64_t low = top;
    for (bool more = true; more && low > 0;) {
        more = false;
        for (unsigned i = 0; i < n; i++) {
            if (segs[i].counter == low - 1) {
                low--;
                more = true;
                break;
            }
        }
    }
    unsigned count = 0;
    for (unsigned i = 0; i < n; i++) {
        if (segs[i].used && segs[i].counter < low) {
            stale[i] = true;
            count++;
        }
    }
    return count;
}

/* Reads the format word at the start of an open segment: zero means preallocated, never
 * written. A file too short to hold it is unused too (libraft removes empty ones). */
static int segment_used(const char *dir, const char *name, bool *used, char *errmsg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *used = false;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "open %s: %s", path, strerror(errno));
    }
    uint64_t format = 0;
    ssize_t n = read(fd, &format, sizeof format);
    int e = errno;
    close(fd);
    if (n < 0) {
        return rpg_err(errmsg, RPG_EIO, "read %s: %s", path, strerror(e));
    }
    *used = n == (ssize_t)sizeof format && format != 0;
    return 0;
}

#define SEGMENTS_SCAN_MAX 4096

int storage_check_segments(const char *dir, char *errmsg)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        return rpg_err(errmsg, RPG_EIO, "open raft directory %s: %s", dir, strerror(errno));
    }
    struct storage_open_segment *segs = calloc(SEGMENTS_SCAN_MAX, sizeof *segs);
    bool *stale = calloc(SEGMENTS_SCAN_MAX, sizeof *stale);
    unsigned n = 0;
    int rv = 0;
    if (segs == NULL || stale == NULL) {
        rv = rpg_err(errmsg, RPG_ENOMEM, "out of memory");
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < SEGMENTS_SCAN_MAX) {
        unsigned long long counter = 0;
        int consumed = 0;
        if (sscanf(e->d_name, "open-%llu%n", &counter, &consumed) != 1 ||
            e->d_name[consumed] != '\0') {
            continue;
        }
        segs[n].counter = counter;
        rv = segment_used(dir, e->d_name, &segs[n].used, errmsg);
        if (rv != 0) {
            goto out;
        }
        n++;
    }
    if (storage_stale_segments(segs, n, stale) == 0) {
        goto out;
    }
    char names[160] = "";
    size_t len = 0;
    for (unsigned i = 0; i < n && len < sizeof names; i++) {
        if (stale[i]) {
            len += (size_t)snprintf(names + len, sizeof names - len, "%sopen-%" PRIu64,
                                    len > 0 ? " " : "", segs[i].counter);
        }
    }
    rv = rpg_err(
        errmsg, RPG_ECORRUPT,
        "raft directory %s: stale open segments (%s) would load at wrong indexes; " STORAGE_REMEDY,
        dir, names);
out:
    free(segs);
    free(stale);
    closedir(d);
    return rv;
}

int storage_mark_fault(const char *dir, const char *what, char *errmsg)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_FAULT_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    time_t now = time(NULL);
    struct tm tm;
    char when[32];
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "create %s: %s", tmp, strerror(errno));
    }
    char buf[RPG_ERRMSG_SIZE + 64];
    int n = snprintf(buf, sizeof buf, "%s %s\n", when, what);
    if (n >= (int)sizeof buf) {
        n = (int)sizeof buf - 1;
        buf[n - 1] = '\n';
    }
    int rv = 0;
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "write %s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "rename %s: %s", tmp, strerror(errno));
    }
    if (rv != 0) {
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

int storage_check_fault(const char *dir, char *errmsg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_FAULT_FILE);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0 : rpg_err(errmsg, RPG_EIO, "read %s: %s", path, strerror(errno));
    }
    char line[128] = "";
    if (fgets(line, sizeof line, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return rpg_err(
        errmsg, RPG_ECORRUPT,
        "raft directory %s may have lost entries in a failed write (%s, %.20s); " STORAGE_REMEDY,
        dir, STORAGE_FAULT_FILE, line);
}

int storage_open_bytes(const char *dir, uint64_t *bytes, char *errmsg)
{
    *bytes = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT
                   ? 0
                   : rpg_err(errmsg, RPG_EIO, "open raft directory %s: %s", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long counter = 0;
        int consumed = 0;
        struct stat st;
        if (sscanf(e->d_name, "open-%llu%n", &counter, &consumed) == 1 &&
            e->d_name[consumed] == '\0' && fstatat(dirfd(d), e->d_name, &st, 0) == 0) {
            *bytes += (uint64_t)st.st_blocks * 512;
        }
    }
    closedir(d);
    return 0;
}

int storage_free_bytes(const char *dir, uint64_t *avail, char *errmsg)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0) {
        return rpg_err(errmsg, RPG_EIO, "statvfs %s: %s", dir, strerror(errno));
    }
    *avail = (uint64_t)st.f_bavail * st.f_frsize;
    return 0;
}

int storage_probe(const char *dir, int *err_no, char *errmsg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_PROBE_FILE);
    static const char block[4096];
    const char *what = "create";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        goto err;
    }
    what = "write";
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block) {
        if (errno == 0) {
            errno = ENOSPC; /* a short write: the file system is full */
        }
        goto err_close;
    }
    what = "fsync";
    if (fsync(fd) != 0) {
        goto err_close;
    }
    close(fd);
    what = "remove";
    if (unlink(path) != 0) {
        goto err;
    }
    *err_no = 0;
    return 0;

err_close:;
    int e = errno;
    close(fd);
    unlink(path);
    errno = e;
err:
    *err_no = errno;
    return rpg_err(errmsg, RPG_EIO, "%s %s: %s (errno=%d)", what, path, strerror(errno), errno);
}

const char *storage_leader_action_name(enum storage_leader_action a)
{
    switch (a) {
    case STORAGE_LEADER_STAY: return "stay";
    case STORAGE_LEADER_TRANSFER: return "transfer";
    case STORAGE_LEADER_EXIT: return "exit";
    }
    return "unknown";
}

enum storage_leader_action storage_leader_decide(bool storage_failed, rpg_msec now,
                                                 rpg_msec confirmed, rpg_msec transfer_at,
                                                 unsigned election_timeout_ms)
{
    rpg_msec bound = (rpg_msec)STORAGE_LEADER_BOUND_ET * election_timeout_ms;
    bool stuck = now >= confirmed && now - confirmed >= bound;
    if (!storage_failed && !stuck) {
        return STORAGE_LEADER_STAY;
    }
    if (transfer_at == 0) {
        return STORAGE_LEADER_TRANSFER;
    }
    return now >= transfer_at && now - transfer_at >= bound ? STORAGE_LEADER_EXIT
                                                            : STORAGE_LEADER_STAY;
}

bool storage_state_diverged(unsigned n_same, unsigned n_differ, bool leader_differs)
{
    unsigned own_side = n_same + 1;
    return n_differ > own_side || (n_differ > 0 && n_differ == own_side && leader_differs);
}

void storage_pending_side_path(const char *dir, char *path, size_t size)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    snprintf(path, size, "%.*s%s", (int)len, dir, STORAGE_PENDING_SIDE_SUFFIX);
}

/* The directory holding path, for the fsync that makes its creation durable. */
static void parent_of(const char *path, char *parent, size_t size)
{
    snprintf(parent, size, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == parent) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(parent, size, ".");
    }
}

int storage_pending_open(const char *dir, int *fd, char *errmsg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_PENDING_FILE);
    return storage_pending_open_path(path, fd, errmsg);
}

int storage_pending_open_path(const char *path, int *fd, char *errmsg)
{
    char dir[PATH_MAX];
    parent_of(path, dir, sizeof dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "create %s: %s (errno=%d)", path, strerror(errno), errno);
    }
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        goto err;
    }
    /* Blocks written with data (not fallocate's unwritten extents): overwriting them later
     * needs no new space. */
    static const char zeros[4096];
    for (off_t off = st.st_size; off < (off_t)STORAGE_PENDING_SIZE; off += (off_t)sizeof zeros) {
        if (pwrite(*fd, zeros, sizeof zeros, off) != (ssize_t)sizeof zeros) {
            goto err;
        }
    }
    if (fsync(*fd) != 0) {
        goto err;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
err:;
    int e = errno;
    close(*fd);
    *fd = -1;
    return rpg_err(errmsg, RPG_EIO, "reserve %s: %s (errno=%d)", path, strerror(e), e);
}

int storage_pending_write(int fd, const struct storage_pending *p, char *errmsg)
{
    static char buf[STORAGE_PENDING_SIZE];
    memset(buf, 0, sizeof buf);
    if (p != NULL) {
        size_t len = (size_t)snprintf(buf, sizeof buf,
                                      "raftpg storage-pending 2 id=%" PRIu64 " acked=%" PRIu64
                                      " first=%" PRIu64 " n=%zu overflow=%d\n%.150s\n",
                                      p->id, p->acked, p->first, p->overflow ? 0 : p->n,
                                      p->overflow ? 1 : 0, p->why);
        for (size_t i = 0; !p->overflow && i < p->n && len + 40 < sizeof buf; i++) {
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%" PRIu64 " %016" PRIx64 "\n",
                                    p->e[i].term, p->e[i].sum);
        }
    }
    if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
        return rpg_err(errmsg, RPG_EIO, "write %s: %s (errno=%d)", STORAGE_PENDING_FILE,
                       strerror(errno), errno);
    }
    return 0;
}

int storage_pending_sync(int fd, char *errmsg)
{
    if (fdatasync(fd) != 0) {
        return rpg_err(errmsg, RPG_EIO, "fsync %s: %s (errno=%d)", STORAGE_PENDING_FILE,
                       strerror(errno), errno);
    }
    return 0;
}

int storage_pending_read(const char *dir, struct storage_pending *p, char *errmsg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, STORAGE_PENDING_FILE);
    return storage_pending_read_path(dir, path, p, errmsg);
}

int storage_pending_read_path(const char *dir, const char *path, struct storage_pending *p,
                              char *errmsg)
{
    memset(p, 0, sizeof *p);
    /* The file's name alone when it is in dir: the message must keep room for the remedy. */
    size_t dlen = strlen(dir);
    const char *shown = strncmp(path, dir, dlen) == 0 && path[dlen] == '/' ? path + dlen + 1 : path;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0
                               : rpg_err(errmsg, RPG_EIO, "read %s: %s (errno=%d)", path,
                                         strerror(errno), errno);
    }
    int c = fgetc(f);
    if (c == EOF || c == 0) {
        fclose(f);
        return 0; /* nothing pending */
    }
    ungetc(c, f);
    unsigned long long id = 0, acked = 0, first = 0;
    size_t n = 0;
    int overflow = 0;
    int rv = 0;
    unsigned version = 0;
    /* Version 1 (no id) is what earlier releases wrote in the directory. */
    bool header =
        fscanf(f, "raftpg storage-pending %u ", &version) == 1 &&
        (version == 1 || (version == 2 && fscanf(f, "id=%llu ", &id) == 1)) &&
        fscanf(f, "acked=%llu first=%llu n=%zu overflow=%d\n", &acked, &first, &n, &overflow) == 4;
    if (!header || n > STORAGE_PENDING_MAX || fgets(p->why, sizeof p->why, f) == NULL) {
        rv = rpg_err(errmsg, RPG_ECORRUPT,
                     "raft directory %s: %s cannot be read back: the failure its last run had "
                     "pending cannot be checked; " STORAGE_REMEDY,
                     dir, shown);
        goto out;
    }
    p->id = id;
    p->why[strcspn(p->why, "\n")] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned long long term = 0, sum = 0;
        if (fscanf(f, "%llu %llx\n", &term, &sum) != 2) {
            rv = rpg_err(errmsg, RPG_ECORRUPT,
                         "raft directory %s: %s holds %zu of its %zu entries: the failure its "
                         "last run had pending cannot be checked; " STORAGE_REMEDY,
                         dir, shown, i, n);
            goto out;
        }
        p->e[i].term = term;
        p->e[i].sum = sum;
    }
    if (overflow) {
        rv = rpg_err(
            errmsg, RPG_ECORRUPT,
            "raft directory %s: its last run ended with more than %u entries held past "
            "the stored index %llu after a failed write (%s), too many to check; " STORAGE_REMEDY,
            dir, STORAGE_PENDING_MAX, acked, shown);
        goto out;
    }
    p->present = true;
    p->acked = acked;
    p->first = first;
    p->n = n;
out:
    fclose(f);
    return rv;
}
