/* raftpg: the agent ("run"), the configuration checker and the client ("ctl"), in one binary. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "raftpg/agent.h"
#include "raftpg/conf.h"
#include "raftpg/cons_uv.h"
#include "raftpg/ctl.h"
#include "raftpg/tls_crl.h"
#include "raftpg/fence.h"
#include "raftpg/guard.h"
#include "raftpg/log.h"
#include "raftpg/loopwatch.h"
#include "raftpg/vip.h"
#include "raftpg/watchdog.h"

static const char *usage =
    "usage: raftpg COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run -c FILE            run the agent with this node's configuration\n"
    "  check-config FILE      validate a configuration file and print the derived settings\n"
    "  ctl [OPTIONS] CMD ...  query and change the cluster through its API (ctl --help)\n"
    "  guard -c FILE          started by the agent: fences the node if the agent dies\n"
    "  gen-secret FILE        write a new cluster secret (raft.secret_file) to FILE, mode 0600\n"
    "  recover -c FILE --force  after the loss of a majority: make this member's Raft log\n"
    "                         a cluster of this member alone (its agent stopped)\n"
    "  version                print the version\n";

/* Reads the configured secret files once, for their checks (conf_secret_read), and forgets
 * them: the agent reads them again where it uses them. Returns 0 or RPG_ECONFIG with errmsg. */
static int check_secrets(const struct conf *c, bool any_owner, char *errmsg)
{
    uint8_t key[CONF_SECRET_SIZE];
    int rv = conf_secret_read(c, false, any_owner, key, errmsg);
    if (rv == 0) {
        rv = conf_secret_read(c, true, any_owner, key, errmsg);
    }
    sodium_memzero(key, sizeof key);
    return rv == RPG_ENOTFOUND ? 0 : rv;
}

/* Reads the revocation lists the agent will use (the server's and its clients'), for their
 * checks: readable, lists, signed by their CA. */
static int check_crls(const struct conf *c, char *errmsg)
{
    int rv = 0;
    if (c->restapi.crlfile[0] != '\0') {
        rv = tls_crl_load(NULL, "restapi.crlfile", c->restapi.crlfile, "restapi.cafile",
                          c->restapi.cafile, false, errmsg);
    }
    const char *client = conf_client_crlfile(c);
    if (rv == 0 && client[0] != '\0') {
        bool own = c->ctl.crlfile[0] != '\0', own_ca = c->ctl.cacert[0] != '\0';
        rv = tls_crl_load(NULL, own ? "ctl.crlfile" : "restapi.crlfile (for ctl and the agents)",
                          client, own_ca ? "ctl.cacert" : "restapi.cafile",
                          own_ca ? c->ctl.cacert : c->restapi.cafile, true, errmsg);
    }
    return rv;
}

static int cmd_check_config(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: raftpg check-config FILE\n"
               "Validates FILE; prints the derived settings and exits 0, or prints the first\n"
               "error as FILE:LINE:COLUMN: KEY: problem and exits 1.\n");
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: raftpg check-config FILE\n");
        return 2;
    }
    struct conf c;
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_load(argv[1], &c, errmsg) != 0) {
        fprintf(stderr, "%s\n", errmsg);
        conf_free(&c);
        return 1;
    }
    /* Run by root, the check is for the agent's user, whoever owns the file. */
    if (check_secrets(&c, geteuid() == 0, errmsg) != 0 || check_crls(&c, errmsg) != 0) {
        fprintf(stderr, "%s\n", errmsg);
        conf_free(&c);
        return 1;
    }
    const struct conf_member *self = conf_self(&c);
    printf("%s: ok\n", argv[1]);
    for (unsigned i = 0; i < c.n_warnings && i < CONF_WARNINGS_MAX; i++) {
        printf("warning: %s\n", c.warnings[i]);
    }
    if (c.n_warnings > CONF_WARNINGS_MAX) {
        printf("warning: %u more keys ignored\n", c.n_warnings - CONF_WARNINGS_MAX);
    }
    printf("scope=%s name=%s mode=%s\n", c.scope, c.name,
           self != NULL ? "initial member (bootstraps on first start)"
                        : "joining member (waits for 'ctl member add')");
    printf("raft: listen=%s data_dir=%s election_timeout=%ums heartbeat_timeout=%ums "
           "pre_vote=%s members=%u\n",
           c.raft.listen, c.raft.data_dir, c.raft.election_timeout_ms, c.raft.heartbeat_timeout_ms,
           c.raft.pre_vote ? "on" : "off", c.raft.n_members);
    for (unsigned i = 0; i < c.raft.n_members; i++) {
        printf("  member %s id=%u raft=%s api=%s\n", c.raft.members[i].name, i + 1,
               c.raft.members[i].raft, c.raft.members[i].api);
    }
    if (c.raft.secret_file[0] != '\0') {
        printf("raft transport: authenticated and encrypted, secret_file=%s%s%s\n",
               c.raft.secret_file, c.raft.secret_file_previous[0] != '\0' ? " previous=" : "",
               c.raft.secret_file_previous);
    } else {
        printf("raft transport: UNAUTHENTICATED (raft.secret_file is not set)\n");
    }
    printf("restapi: listen=%s connect_address=%s\n", c.restapi.listen, c.restapi.connect_address);
    const char *server = conf_server_header(c.restapi.server_tokens);
    printf("restapi: server_tokens=%s (Server: %s) extra headers: %u http, %u https%s%s%s\n",
           conf_server_tokens_name(c.restapi.server_tokens), server != NULL ? server : "none",
           c.restapi_headers.n_http, c.restapi_headers.n_https,
           c.restapi_headers.n_https > 0 && c.restapi.certfile[0] == '\0'
               ? " (not sent: no restapi.certfile)"
               : "",
           c.restapi.crlfile[0] != '\0' ? " crlfile=" : "", c.restapi.crlfile);
    if (c.has_postgresql) {
        printf("postgresql: bin_dir=%s data_dir=%s listen=%s connect_address=%s\n",
               c.postgresql.bin_dir, c.postgresql.data_dir, c.postgresql.listen,
               c.postgresql.connect_address);
        printf("tags: nofailover=%s nosync=%s failover_priority=%d\n",
               c.tags.nofailover ? "true" : "false", c.tags.nosync ? "true" : "false",
               c.tags.failover_priority);
    }
    struct fence_timing ft;
    fence_timing_init(&ft, c.raft.election_timeout_ms);
    rpg_msec wd_wait = watchdog_promote_wait_ms(&c.watchdog, ft.lease_ms + ft.margin_ms);
    printf("fencing: lease=%llums renewed every %llums, fence starts %llums before the lease "
           "ends, immediate stop after %llums, a new leader promotes no earlier than %llums "
           "after it last heard from the previous one%s\n",
           (unsigned long long)ft.lease_ms, (unsigned long long)ft.renew_ms,
           (unsigned long long)ft.margin_ms, (unsigned long long)ft.escalate_ms,
           (unsigned long long)fence_promote_not_before(&ft, 0, 0, wd_wait),
           wd_wait > 0 ? " (its watchdog timeout included)" : "");
    if (c.has_vip) {
        printf("vip: address=%s interface=%s arping_count=%u announce_repeats=%u "
               "announce_interval=%ums lifetime=%us (renewed every %ums)\n",
               c.vip.address.text, c.vip.interface, c.vip.arping_count, c.vip.announce_repeats,
               c.vip.announce_interval_ms, c.vip.lifetime_s, vip_renew_interval_ms(&c.vip));
    }
    char lag[32] = "none";
    if (c.max_lag.set) {
        snprintf(lag, sizeof lag, "%llu", (unsigned long long)c.max_lag.bytes);
    }
    printf("dynamic configuration (the first leader records it): synchronous_mode=%s "
           "synchronous_node_count=%u synchronous_commit=%s maximum_lag_on_failover=%s "
           "parameters=%u pg_hba_lines=%u\n",
           conf_sync_mode_name(c.sync.mode), c.sync.node_count,
           conf_sync_commit_name(c.sync.commit), lag, c.dcs.n_parameters, c.dcs.n_pg_hba);
    if (c.has_postgresql) {
        /* What the member that initialises the cluster runs (README "bootstrap.method and
         * post_bootstrap"). */
        if (c.bootstrap.custom) {
            const struct conf_boot_method *m = &c.bootstrap.methods[c.bootstrap.custom_index];
            printf("bootstrap: method=%s command=\"%s\"%s arguments=%u", m->name, m->command,
                   m->no_params ? " no_params" : "", m->n_args);
        } else {
            printf("bootstrap: method=initdb");
        }
        if (c.bootstrap.post_bootstrap[0] != '\0') {
            printf(" post_bootstrap=\"%s\" post_bootstrap_timeout=%us\n",
                   c.bootstrap.post_bootstrap, c.bootstrap.post_bootstrap_timeout_s);
        } else {
            printf(" post_bootstrap=none\n");
        }
    }
    printf("watchdog: mode=%s device=%s safety_margin=%ums\n",
           conf_watchdog_mode_name(c.watchdog.mode), c.watchdog.device,
           c.watchdog.safety_margin_ms);
    conf_free(&c);
    return 0;
}

static int cmd_gen_secret(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        bool help = argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
        fprintf(help ? stdout : stderr,
                "usage: raftpg gen-secret FILE\n"
                "Writes a new random cluster secret (32 bytes as 64 hex digits) to FILE with mode\n"
                "0600; refuses to overwrite an existing file. Give the same file to every member\n"
                "(raft.secret_file), owned by the user the agent runs as.\n");
        return help ? 0 : 2;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_secret_generate(argv[1], errmsg) != 0) {
        fprintf(stderr, "raftpg gen-secret: %s\n", errmsg);
        return 1;
    }
    return 0;
}

/* Whether something listens on the TCP address addr (host:port): a bind there fails with
 * EADDRINUSE even with SO_REUSEADDR. */
static bool addr_in_use(const char *addr)
{
    char host[16];
    uint16_t port = 0;
    if (conf_parse_addr(addr, host, &port) != 0) {
        return false;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    /* SO_REUSEADDR: connections of a stopped agent left in TIME_WAIT are not a listener. */
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    bool used = inet_pton(AF_INET, host, &sa.sin_addr) == 1 &&
                bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == EADDRINUSE;
    close(fd);
    return used;
}

static int cmd_recover(int argc, char **argv)
{
    const char *file = NULL;
    bool force = false, help = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            help = true;
        } else {
            fprintf(stderr, "raftpg recover: unknown argument \"%s\"\n", argv[i]);
            file = NULL;
            break;
        }
    }
    if (help || file == NULL || !force) {
        fprintf(
            help ? stdout : stderr,
            "usage: raftpg recover -c FILE --force\n"
            "After the loss of a majority of the members' Raft directories (or hosts), makes\n"
            "this member's Raft log a cluster of this member alone, so that it leads again with\n"
            "every entry it holds; run it on the member with the longest log, with its agent\n"
            "stopped, as the agent's user. Then start its agent, and bring each other member\n"
            "back with an empty raft.data_dir: raftpg ctl member remove NAME, start its agent,\n"
            "raftpg ctl member add NAME --raft ADDR --api ADDR (README, \"The Raft group\").\n");
        return help ? 0 : 2;
    }
    struct conf c;
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_load(file, &c, errmsg) != 0) {
        fprintf(stderr, "raftpg recover: %s\n", errmsg);
        conf_free(&c);
        return 1;
    }
    int rc = 1;
    uint64_t id = 0;
    struct stat st;
    const char *dir = c.raft.data_dir;
    if (cons_identity_read(dir, c.scope, c.name, &id, errmsg) != 0) {
        fprintf(stderr, "raftpg recover: %s: no Raft log to recover from here (%s)\n", dir, errmsg);
    } else if (stat(dir, &st) != 0) {
        fprintf(stderr, "raftpg recover: %s: %s\n", dir, strerror(errno));
    } else if (st.st_uid != geteuid()) {
        /* Files written as another user would lock the agent out of its own directory. */
        fprintf(stderr,
                "raftpg recover: %s belongs to uid %u: run this as that user (the agent's), e.g. "
                "runuser -u postgres -- raftpg recover -c %s --force\n",
                dir, (unsigned)st.st_uid, file);
    } else if (addr_in_use(c.raft.listen) || addr_in_use(c.restapi.listen)) {
        fprintf(stderr,
                "raftpg recover: something listens on raft.listen %s or restapi.listen %s: stop "
                "this member's agent first\n",
                c.raft.listen, c.restapi.listen);
    } else if (cons_recover(&c, id, errmsg) != 0) {
        fprintf(stderr, "raftpg recover: %s\n", errmsg);
    } else {
        printf("recovered: the Raft log in %s now ends with a configuration of %s (id %llu) "
               "alone.\nStart this member's agent: it elects itself and keeps every entry its log "
               "holds.\nThen, for each other member: move its raft.data_dir aside, raftpg ctl "
               "member remove NAME,\nstart its agent, raftpg ctl member add NAME --raft ADDR "
               "--api ADDR.\n",
               dir, c.name, (unsigned long long)id);
        rc = 0;
    }
    conf_free(&c);
    return rc;
}

/* The loop keeps the lease, and on a loaded machine it mostly waits for a CPU (README, "Loop
 * stalls"): the unit may start the agent with a raised priority (Nice=). Only the loop thread
 * keeps it: the threads it creates and the programs they start (PostgreSQL, ip, the guard) get
 * the default back (SCHED_RESET_ON_FORK resets a negative nice in every new task). Before any
 * thread exists. */
static void sched_keep_for_loop(void)
{
    struct sched_param sp;
    int policy = sched_getscheduler(0);
    if (policy < 0 || sched_getparam(0, &sp) != 0 ||
        sched_setscheduler(0, policy | SCHED_RESET_ON_FORK, &sp) != 0) {
        log_warning("cannot keep the agent's priority to its loop (SCHED_RESET_ON_FORK: %s): "
                    "programs it starts inherit it",
                    strerror(errno));
        return;
    }
    errno = 0;
    int nice_value = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && nice_value < 0) {
        log_info("event loop at nice %d; threads and programs it starts at nice 0", nice_value);
    }
}

static int cmd_run(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: raftpg run -c FILE\n"
                   "Runs the agent in the foreground; logs go to stderr. SIGTERM or SIGINT stop\n"
                   "it cleanly.\n");
            return 0;
        } else {
            fprintf(stderr, "raftpg run: unexpected argument \"%s\"\nusage: raftpg run -c FILE\n",
                    argv[i]);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "raftpg run: -c FILE is required\n");
        return 2;
    }
    /* A SIGTERM or SIGINT that comes before the loop's handlers exist is held, not fatal: the
     * agent acts on it, cleanly, once agent_start has installed them (it unblocks both). */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    static struct agent a; /* large; lives for the whole process */
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_load(path, &a.conf, errmsg) != 0) {
        fprintf(stderr, "raftpg run: %s\n", errmsg);
        conf_free(&a.conf);
        return 1;
    }
    /* A secret file the agent would refuse when Raft starts is refused now, not after the
     * agent has waited to join. */
    if (check_secrets(&a.conf, false, errmsg) != 0) {
        fprintf(stderr, "raftpg run: %s\n", errmsg);
        conf_free(&a.conf);
        return 1;
    }
    log_setup(a.conf.name, (enum log_level)a.conf.log.level, a.conf.log.format == CONF_LOG_JSON);
    log_info("raftpg %s starting (scope=%s config=%s)", RAFTPG_VERSION, a.conf.scope, path);
    for (unsigned i = 0; i < a.conf.n_warnings && i < CONF_WARNINGS_MAX; i++) {
        log_warning("%s", a.conf.warnings[i]);
    }

    sched_keep_for_loop();
    /* Programs are spawned in libuv's thread pool (proc.h), beside libraft's and the storage
     * probe's disk work, which a hung disk can hold for good: libuv's default of 4 threads would
     * leave a fence's `ip addr del` waiting behind them. Read once, at the pool's first use. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Names what holds the loop longer than the lease can stand (loopwatch.h); it never keeps
     * the loop alive, and is closed once the agent's handles are. */
    static struct loopwatch watch;
    int rv = loopwatch_start(&watch, &loop);
    if (rv != 0) {
        log_warning("loop-stall detector not started: %s", uv_strerror(rv));
    }
    rv = agent_start(&a, &loop, errmsg);
    if (rv != 0) {
        log_error("cannot start: %s", errmsg);
        agent_stop(&a, 1);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    loopwatch_close(&watch, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int code = a.exit_code;
    if (uv_loop_close(&loop) != 0) {
        log_warning("event loop closed with handles still open");
    }
    log_info("stopped (exit code %d)", code);
    conf_free(&a.conf);
    return code;
}

int main(int argc, char **argv)
{
    /* A peer that dies mid-write must give EPIPE on that socket, not kill the agent. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("raftpg %s\n", RAFTPG_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "check-config") == 0) {
        return cmd_check_config(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "gen-secret") == 0) {
        return cmd_gen_secret(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "guard") == 0) {
        return guard_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "recover") == 0) {
        return cmd_recover(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "ctl") == 0) {
        return ctl_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "raftpg: unknown command \"%s\"\n%s", cmd, usage);
    return 2;
}
