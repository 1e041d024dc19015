/* pg: PostgreSQL in the process table (pg_int.h): whether a process is a server or works in a
 * data directory, the postmaster of a data directory (postmaster.pid checked against /proc, the
 * one confirmed kept by a pidfd so that the fence's frequent questions stay cheap), its orphaned
 * children, and signalling a postmaster with its children. Split from the observer
 * (pg_observe.c), which asks these questions on each observation. */
#include "pg_int.h"

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
        char state;
        long ppid;
        if (proc_stat(pid, &state, &ppid) && ppid == postmaster_pid && kill((pid_t)pid, sig) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Whether process pid is a PostgreSQL server process (its command name; a shell that changed to
 * the data directory is not). */
bool pg_is_postgres(long pid)
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

long pg_parent_of(long pid)
{
    char state;
    long ppid;
    if (!proc_stat(pid, &state, &ppid) || state == 'Z' || state == 'X') {
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
    if (same && last_pid > 0 && pg_parent_of(last_pid) > 0 && works_in(last_pid, dir) &&
        pg_is_postgres(last_pid) && !exiting(last_pid)) {
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
            !pg_is_postgres(pid)) {
            continue;
        }
        long ppid = pg_parent_of(pid);
        if (ppid > 0 && !(works_in(ppid, dir) && pg_is_postgres(ppid)) && !is_single_user(pid) &&
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
int pg_pid_working_in(const char *data_dir)
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
        if (pid > 0 && pid <= INT32_MAX && *end == '\0' && works_in(pid, dir) &&
            pg_is_postgres(pid)) {
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
        !works_in(pid, dir) || !pg_is_postgres(pid)) {
        confirmed_forget();
        return find_postmaster(data_dir);
    }
    confirm(data_dir, path, (int)pid);
    status_line(buf, status, size);
    return (int)pid;
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
