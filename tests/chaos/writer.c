/* raftpg_chaos_writer: the client of the chaos tests (DESIGN.md §7). Run in the testbed's client
 * namespace, it writes numbered rows to several targets at once (the VIP and each node directly),
 * one outstanding statement per target, on one poll() loop with non-blocking libpq, and prints
 * one line per acknowledged commit:
 *
 *     TARGET NODE ACK_MS ID
 *
 * TARGET is the name given on the command line, NODE the server's chaos.node setting (a custom
 * parameter the test sets to the member name) as returned by the INSERT itself, so that a write
 * through the VIP names the node that took it, ACK_MS the
 * CLOCK_MONOTONIC time in milliseconds (3 decimals) at which the end of the autocommit INSERT
 * (ReadyForQuery, after its commit) arrived, ID the row's number. Connects and statements are
 * bounded by a timeout; a connection that fails, breaks or times out is dropped and opened again
 * after a short pause, so a write that timed out is never counted as acknowledged. SQL errors (a
 * standby's read-only refusal) keep the connection. Diagnostics go to stderr as
 * "# MS TARGET what", one line per change of what a target reports.
 *
 *     raftpg_chaos_writer now
 *     raftpg_chaos_writer write [-i INTERVAL_MS] [-c CONNECT_TIMEOUT_MS] [-t TIMEOUT_MS]
 *                               [-d DURATION_S] [-b FIRST_ID] NAME=CONNINFO...
 *
 * INTERVAL_MS (default 5) is the pause between two writes on one target, CONNECT_TIMEOUT_MS
 * (default 500) bounds a connect, TIMEOUT_MS (default 1000) a statement.
 *
 * write runs until SIGTERM or SIGINT, or DURATION_S (default 600) at the latest, then prints a
 * summary on stderr and exits 0. The table is chaos_acks (id bigint primary key, target text,
 * node text); the test creates it. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define TARGETS_MAX 8
#define RETRY_PAUSE_MS 50.0

enum phase {
    PHASE_IDLE,       /* no connection; (re)connect at next_ms */
    PHASE_CONNECTING, /* PQconnectPoll in progress */
    PHASE_READY,      /* connected; the next INSERT goes at next_ms */
    PHASE_BUSY,       /* an INSERT is in flight */
};

struct target {
    char name[32];
    const char *conninfo;
    PGconn *conn;
    enum phase phase;
    PostgresPollingStatusType poll_want;
    double deadline_ms; /* connect or statement bound */
    double next_ms;     /* when the next connect or INSERT may start */
    int64_t id;         /* the row in flight */
    char node[64];      /* from the result of the INSERT in flight */
    bool got_row;       /* the INSERT returned its row */
    bool got_error;     /* some result of the statement was an error */
    char last_msg[160]; /* last diagnostic, printed only when it changes */
    unsigned long acks, errors, timeouts, connects;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* One diagnostic line for t, unless it says the same as the last one. */
static void note(struct target *t, const char *what)
{
    char buf[sizeof t->last_msg];
    snprintf(buf, sizeof buf, "%s", what);
    /* libpq messages end with a newline and may span lines: keep one line. */
    for (char *p = buf; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ') {
        buf[--n] = '\0';
    }
    if (strcmp(buf, t->last_msg) == 0) {
        return;
    }
    snprintf(t->last_msg, sizeof t->last_msg, "%s", buf);
    fprintf(stderr, "# %.3f %s %s\n", now_ms(), t->name, buf);
}

/* Drops the connection; the next connect waits a little, so a refusing server is not hammered. */
static void drop(struct target *t, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof msg, "dropped: %s", why);
    note(t, msg);
    if (t->conn != NULL) {
        PQfinish(t->conn);
    }
    t->conn = NULL;
    t->phase = PHASE_IDLE;
    t->next_ms = now_ms() + RETRY_PAUSE_MS;
}

static void start_connect(struct target *t, unsigned timeout_ms)
{
    t->conn = PQconnectStart(t->conninfo);
    t->connects++;
    if (t->conn == NULL) {
        drop(t, "out of memory");
        return;
    }
    if (PQstatus(t->conn) == CONNECTION_BAD) {
        drop(t, PQerrorMessage(t->conn));
        return;
    }
    t->phase = PHASE_CONNECTING;
    t->poll_want = PGRES_POLLING_WRITING;
    t->deadline_ms = now_ms() + timeout_ms;
}

static void continue_connect(struct target *t)
{
    t->poll_want = PQconnectPoll(t->conn);
    if (t->poll_want == PGRES_POLLING_FAILED) {
        drop(t, PQerrorMessage(t->conn));
    } else if (t->poll_want == PGRES_POLLING_OK) {
        if (PQsetnonblocking(t->conn, 1) != 0) {
            drop(t, PQerrorMessage(t->conn));
            return;
        }
        note(t, "connected");
        t->phase = PHASE_READY;
        t->next_ms = now_ms();
    }
}

static void start_insert(struct target *t, int64_t id, unsigned timeout_ms)
{
    static const char sql[] = "INSERT INTO chaos_acks (id, target, node) "
                              "VALUES ($1::bigint, $2, current_setting('chaos.node')) "
                              "RETURNING node";
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    const char *params[2] = {idbuf, t->name};
    if (!PQsendQueryParams(t->conn, sql, 2, NULL, params, NULL, NULL, 0)) {
        drop(t, PQerrorMessage(t->conn));
        return;
    }
    t->id = id;
    t->got_row = false;
    t->got_error = false;
    t->node[0] = '\0';
    t->phase = PHASE_BUSY;
    t->deadline_ms = now_ms() + timeout_ms;
    if (PQflush(t->conn) < 0) {
        drop(t, PQerrorMessage(t->conn));
    }
}

/* Reads what arrived. The INSERT goes by the extended protocol, whose implicit transaction
 * commits at the Sync message: the row comes back before the commit, so a write counts as
 * acknowledged only at ReadyForQuery, after a row and without an error. Its time is taken then. */
static void continue_insert(struct target *t, unsigned interval_ms)
{
    if (PQflush(t->conn) < 0 || !PQconsumeInput(t->conn)) {
        drop(t, PQerrorMessage(t->conn));
        return;
    }
    while (!PQisBusy(t->conn)) {
        PGresult *r = PQgetResult(t->conn);
        if (r == NULL) {
            /* ReadyForQuery: the statement and its transaction are over. */
            if (PQstatus(t->conn) != CONNECTION_OK) {
                drop(t, PQerrorMessage(t->conn));
                return;
            }
            if (t->got_row && !t->got_error) {
                printf("%s %s %.3f %" PRId64 "\n", t->name, t->node[0] ? t->node : "?", now_ms(),
                       t->id);
                fflush(stdout);
                t->acks++;
                note(t, "acknowledging");
            }
            t->phase = PHASE_READY;
            t->next_ms = now_ms() + interval_ms;
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            snprintf(t->node, sizeof t->node, "%s", PQgetvalue(r, 0, 0));
            t->got_row = true;
        } else {
            t->got_error = true;
            t->errors++;
            note(t, PQresultErrorMessage(r));
        }
        PQclear(r);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: raftpg_chaos_writer now\n"
                    "       raftpg_chaos_writer write [-i INTERVAL_MS] [-c CONNECT_TIMEOUT_MS] "
                    "[-t TIMEOUT_MS] [-d DURATION_S] [-b FIRST_ID] NAME=CONNINFO...\n");
    return 2;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static struct target targets[TARGETS_MAX];
    unsigned n = 0;
    unsigned long interval_ms = 5, connect_ms = 500, timeout_ms = 1000, duration_s = 600;
    unsigned long first_id = 1;

    if (argc == 2 && strcmp(argv[1], "now") == 0) {
        printf("%.3f\n", now_ms());
        return 0;
    }
    if (argc < 3 || strcmp(argv[1], "write") != 0) {
        return usage();
    }
    for (int i = 2; i < argc; i++) {
        unsigned long *opt = NULL;
        unsigned long max = 0;
        if (strcmp(argv[i], "-i") == 0) {
            opt = &interval_ms;
            max = 10000;
        } else if (strcmp(argv[i], "-c") == 0) {
            opt = &connect_ms;
            max = 60000;
        } else if (strcmp(argv[i], "-t") == 0) {
            opt = &timeout_ms;
            max = 60000;
        } else if (strcmp(argv[i], "-d") == 0) {
            opt = &duration_s;
            max = 86400;
        } else if (strcmp(argv[i], "-b") == 0) {
            opt = &first_id;
            max = 1UL << 52;
        }
        if (opt != NULL) {
            if (i + 1 >= argc || !parse_uint(argv[i + 1], max, opt)) {
                return usage();
            }
            i++;
            continue;
        }
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof targets[0].name ||
            n == TARGETS_MAX) {
            return usage();
        }
        memcpy(targets[n].name, argv[i], (size_t)(eq - argv[i]));
        targets[n].conninfo = eq + 1;
        n++;
    }
    if (n == 0 || timeout_ms == 0 || connect_ms == 0) {
        return usage();
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int64_t next_id = (int64_t)first_id;
    double end_ms = now_ms() + (double)duration_s * 1000.0;
    struct pollfd pfd[TARGETS_MAX];
    while (!g_stop && now_ms() < end_ms) {
        double now = now_ms();
        double wake = end_ms;
        nfds_t nfds = 0;
        int slot[TARGETS_MAX];
        for (unsigned i = 0; i < n; i++) {
            struct target *t = &targets[i];
            slot[i] = -1;
            if ((t->phase == PHASE_CONNECTING || t->phase == PHASE_BUSY) && now >= t->deadline_ms) {
                t->timeouts++;
                drop(t, t->phase == PHASE_BUSY ? "statement timed out" : "connect timed out");
            }
            if (t->phase == PHASE_IDLE && now >= t->next_ms) {
                start_connect(t, (unsigned)connect_ms);
            }
            if (t->phase == PHASE_READY && now >= t->next_ms) {
                start_insert(t, next_id++, (unsigned)timeout_ms);
            }
            switch (t->phase) {
            case PHASE_IDLE:
            case PHASE_READY:
                if (t->next_ms < wake) {
                    wake = t->next_ms;
                }
                break;
            case PHASE_CONNECTING:
            case PHASE_BUSY:
                if (t->deadline_ms < wake) {
                    wake = t->deadline_ms;
                }
                pfd[nfds].fd = PQsocket(t->conn);
                pfd[nfds].events = POLLIN;
                if (t->phase == PHASE_CONNECTING && t->poll_want == PGRES_POLLING_WRITING) {
                    pfd[nfds].events = POLLOUT;
                }
                if (t->phase == PHASE_BUSY && PQisnonblocking(t->conn) && PQflush(t->conn) == 1) {
                    pfd[nfds].events |= POLLOUT;
                }
                pfd[nfds].revents = 0;
                slot[i] = (int)nfds++;
                break;
            }
        }
        double wait = wake - now_ms();
        int timeout = wait <= 0 ? 0 : (int)wait + 1;
        if (poll(pfd, nfds, timeout) < 0 && errno != EINTR) {
            perror("raftpg_chaos_writer: poll");
            return 1;
        }
        for (unsigned i = 0; i < n; i++) {
            struct target *t = &targets[i];
            if (slot[i] < 0 || pfd[slot[i]].revents == 0) {
                continue;
            }
            if (t->phase == PHASE_CONNECTING) {
                continue_connect(t);
            } else if (t->phase == PHASE_BUSY) {
                continue_insert(t, (unsigned)interval_ms);
            }
        }
    }
    for (unsigned i = 0; i < n; i++) {
        struct target *t = &targets[i];
        fprintf(stderr, "# %.3f %s summary acks=%lu errors=%lu timeouts=%lu connects=%lu\n",
                now_ms(), t->name, t->acks, t->errors, t->timeouts, t->connects);
        if (t->conn != NULL) {
            PQfinish(t->conn);
        }
    }
    return 0;
}
