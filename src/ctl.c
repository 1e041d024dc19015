#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "raftpg/api.h"
#include "raftpg/cfgdoc.h"
#include "raftpg/conf.h"
#include "raftpg/ctl.h"
#include "raftpg/fsm.h"
#include "raftpg/http.h"
#include "raftpg/proof.h"
#include "raftpg/schedule.h"

/* Where ctl finds this node's configuration when given no address (patronictl's habit). */
#define CTL_DEFAULT_CONFIG "/etc/raftpg/raftpg.yaml"

#define CTL_MAX_ENDPOINTS (CONF_MEMBERS_MAX + 2)

struct ctl {
    char endpoints[CTL_MAX_ENDPOINTS][FSM_ADDR_MAX];
    unsigned n_endpoints;
    unsigned timeout_ms;
    uint8_t key[CONF_SECRET_SIZE]; /* signs changes (proof.h) when has_key */
    bool has_key;
    char scope[CONF_NAME_MAX]; /* the cluster's, from its document */
    bool https;                /* an https:// endpoint, or a configuration with TLS */
    char basic[512];           /* "Basic ..." for restapi.authentication, or "" */
};

/* "Basic base64(user:password)" into c->basic; false if they do not fit. */
static bool set_basic(struct ctl *c, const char *user, const char *password)
{
    char pair[CONF_NAME_MAX + 130];
    int n = snprintf(pair, sizeof pair, "%s:%s", user, password);
    if (n < 0 || (size_t)n >= sizeof pair || sodium_init() < 0) {
        return false;
    }
    char b64[sizeof c->basic - 8];
    if (sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL) > sizeof b64) {
        return false;
    }
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)pair, (size_t)n,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(c->basic, sizeof c->basic, "Basic %s", b64);
    sodium_memzero(pair, sizeof pair);
    return true;
}

static const char *ctl_usage =
    "usage: raftpg ctl [-c FILE | --api HOST:PORT] [--timeout MS] COMMAND\n"
    "\n"
    "commands:\n"
    "  list [--format pretty|json|tsv] [--json] [-W | --watch SECONDS]\n"
    "                                                  members, roles and raft state\n"
    "  topology [-W | --watch SECONDS]                 the primary and who streams from it\n"
    "  version                                         this program's and each member's version\n"
    "  member add NAME --raft HOST:PORT --api HOST:PORT [--no-wait]\n"
    "                                                  add a member (spare, then voter)\n"
    "  member remove NAME [--no-wait]                  remove a member\n"
    "  show-config                                     the cluster-wide settings\n"
    "  sign METHOD PATH [BODY]                         print an Authorization value that\n"
    "                                                  signs this request (for curl)\n"
    "  edit-config [-s KEY=VALUE ...] [-p NAME=VALUE ...] [--apply FILE] [--replace FILE]\n"
    "              [--force] [-q | --quiet]\n"
    "                                                  change them: -s synchronous_mode,\n"
    "                                                  synchronous_node_count,\n"
    "                                                  synchronous_commit,\n"
    "                                                  maximum_lag_on_failover (VALUE null\n"
    "                                                  removes it); -p (--pg) a\n"
    "                                                  PostgreSQL parameter (VALUE null\n"
    "                                                  removes it); -s and -p alone apply at\n"
    "                                                  once; else in $EDITOR, or --apply FILE\n"
    "                                                  (merged) or --replace FILE (all of it;\n"
    "                                                  - is stdin): the diff, then asks\n"
    "                                                  (--force: does not; -q: no diff)\n"
    "  switchover [--leader N] [--candidate N] [--scheduled TIME] [--force]\n"
    "                                                  move the primary to a caught-up standby\n"
    "                                                  (the best one without --candidate); at\n"
    "                                                  TIME (ISO 8601, local time without a\n"
    "                                                  zone; now: at once) when scheduled\n"
    "  flush switchover                                cancel the scheduled switchover\n"
    "  flush restart [MEMBER...]                       cancel the members' scheduled restarts\n"
    "                                                  (all without MEMBER)\n"
    "  failover --candidate N [--force]                promote N: a switchover to it while the\n"
    "                                                  primary is healthy; without one, only if\n"
    "                                                  N holds every acknowledged commit\n"
    "  history [--format pretty|json]                  the cluster's promotions (timelines)\n"
    "  reload [MEMBER...]                              re-read the members' configuration files\n"
    "                                                  (all without MEMBER); says what needs a\n"
    "                                                  restart of the agent\n"
    "  reinit MEMBER [--no-wait] [--force]             clone a standby again from the primary\n"
    "  restart [MEMBER...] [--role primary|replica|any] [--pending] [--pg-version V]\n"
    "          [--scheduled TIME] [--timeout SECONDS] [--force]\n"
    "                                                  restart postgresql, standbys first; at\n"
    "                                                  TIME (ISO 8601, local time without a\n"
    "                                                  zone; now: at once) when scheduled; a\n"
    "                                                  primary not started within SECONDS is\n"
    "                                                  failed over\n"
    "  pause [--wait]                                  maintenance mode: no failover, no\n"
    "                                                  start, stop or promotion (--wait: until\n"
    "                                                  every member has applied it)\n"
    "  resume [--wait]                                 leave maintenance mode\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   find the API through this node's configuration file\n"
    "  --api HOST:PORT     ask this member's API (may be given several times)\n"
    "  --timeout MS        per-request timeout, and x30 the wait for membership changes\n"
    "                      (default 2000)\n"
    "  --secret-file FILE  the cluster secret that signs changes (with -c: raft.secret_file\n"
    "                      of that configuration; also RAFTPG_SECRET_FILE)\n"
    "  --cacert FILE       verify the API's certificate with this CA (with -c: ctl.cacert, else\n"
    "                      restapi.cafile); HTTPS is used for https:// addresses and with -c\n"
    "                      when the configuration has restapi.certfile\n"
    "  --insecure          HTTPS without verifying the API's certificate (with -c: ctl.insecure)\n"
    "  --crlfile FILE      refuse an API whose certificate these revocation lists (PEM, signed\n"
    "                      by the --cacert CA) revoke (with -c: ctl.crlfile, else\n"
    "                      restapi.crlfile when ctl.cacert and --cacert are not given)\n"
    "  --cert FILE         present this client certificate (PEM) over HTTPS, for\n"
    "                      restapi.verify_client (with -c: ctl.certfile)\n"
    "  --key FILE          its key (PEM; default: in the --cert file; with -c: ctl.keyfile)\n"
    "  --username U        restapi.authentication's user for changes (also RAFTPG_API_USERNAME;\n"
    "                      with -c: ctl.authentication, else restapi.authentication), with\n"
    "                      --password-file FILE or RAFTPG_API_PASSWORD; a cluster secret,\n"
    "                      when given, signs instead\n"
    "  the RAFTPG_API environment variable may hold HOST:PORT as well; without any address,\n"
    "  the configuration in RAFTPG_CONFIG, else " CTL_DEFAULT_CONFIG " when it exists\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void add_endpoint(struct ctl *c, const char *addr)
{
    if (addr == NULL || addr[0] == '\0' || c->n_endpoints >= CTL_MAX_ENDPOINTS) {
        return;
    }
    if (strncmp(addr, "http://", 7) == 0) {
        addr += 7;
    } else if (strncmp(addr, "https://", 8) == 0) {
        addr += 8;
        c->https = true;
    }
    for (unsigned i = 0; i < c->n_endpoints; i++) {
        if (strcmp(c->endpoints[i], addr) == 0) {
            return;
        }
    }
    snprintf(c->endpoints[c->n_endpoints], FSM_ADDR_MAX, "%s", addr);
    char *slash = strchr(c->endpoints[c->n_endpoints], '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    c->n_endpoints++;
}

/* GET /cluster from the first endpoint that answers. */
static json_t *fetch_cluster(struct ctl *c, char *errmsg)
{
    snprintf(errmsg, RPG_ERRMSG_SIZE, "no API endpoint");
    for (unsigned i = 0; i < c->n_endpoints; i++) {
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        if (http_request_sync(c->endpoints[i], "GET", "/cluster", NULL, NULL, c->timeout_ms,
                              &status, &body, &len, errmsg) != 0) {
            continue;
        }
        json_error_t jerr;
        json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        free(body);
        if (json_is_object(o)) {
            return o;
        }
        json_decref(o);
        snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: unexpected answer to GET /cluster (http %d)",
                 c->endpoints[i], status);
    }
    return NULL;
}

static json_t *find_member(json_t *cluster, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            return m;
        }
    }
    return NULL;
}

/* The leader's API address as the cluster document names it, copied into out. */
static int leader_api(json_t *cluster, char *out, size_t size)
{
    const char *leader =
        json_string_value(json_object_get(json_object_get(cluster, "raft"), "leader"));
    json_t *m = leader != NULL ? find_member(cluster, leader) : NULL;
    const char *url = json_string_value(json_object_get(m, "api_url"));
    if (url == NULL) {
        return RPG_ENOTFOUND;
    }
    if (strncmp(url, "http://", 7) == 0) {
        url += 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        url += 8;
    }
    snprintf(out, size, "%s", url);
    char *slash = strchr(out, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    return 0;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : dflt;
}

/* The Authorization value for a change: a signature with the cluster secret when ctl has it
 * (it also stops replays; made into buf), else restapi.authentication's credentials (HTTP
 * basic), else none (NULL). */
static const char *auth_for(struct ctl *c, const char *method, const char *path, const char *body,
                            char *buf, size_t size)
{
    if (c->has_key) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        proof_sign_request(c->key, c->scope, method, path, body != NULL ? body : "",
                           (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf, size);
        return buf;
    }
    return c->basic[0] != '\0' ? c->basic : NULL;
}

/* The lines above the member table: cluster, leader, primary, synchronous set, maintenance. */
static void print_summary(json_t *cluster)
{
    json_t *raft = json_object_get(cluster, "raft");
    printf("Cluster: %s (term %lld, leader %s, commit index %lld, answered by %s)\n",
           str_or(cluster, "scope", "?"),
           (long long)json_integer_value(json_object_get(raft, "term")),
           str_or(raft, "leader", "none"),
           (long long)json_integer_value(json_object_get(raft, "commit_index")),
           str_or(raft, "member", "?"));
    json_t *primary = json_object_get(cluster, "primary");
    json_t *sync = json_object_get(cluster, "sync");
    if (json_object_get(cluster, "system_id") != NULL) {
        printf("PostgreSQL: system %s, primary %s (term %lld, timeline %lld)\n",
               str_or(cluster, "system_id", "?"), str_or(primary, "name", "none"),
               (long long)json_integer_value(json_object_get(primary, "term")),
               (long long)json_integer_value(json_object_get(primary, "timeline")));
    }
    if (json_is_true(json_object_get(cluster, "pause"))) {
        printf("Maintenance mode: on\n");
    }
    /* patronictl's lines for a scheduled switchover. */
    json_t *sched = json_object_get(cluster, "scheduled_switchover");
    if (json_is_object(sched)) {
        printf("Switchover scheduled at: %s\n", str_or(sched, "at", "?"));
        if (json_object_get(sched, "from") != NULL) {
            printf("%24s: %s\n", "from", str_or(sched, "from", "?"));
        }
        if (json_object_get(sched, "to") != NULL) {
            printf("%24s: %s\n", "to", str_or(sched, "to", "?"));
        }
    }
    if (json_is_object(sync)) {
        json_t *voters = json_object_get(sync, "voters");
        long long k = (long long)json_integer_value(json_object_get(sync, "k"));
        printf("Synchronous: mode %s, node count %lld, commit %s: ", str_or(sync, "mode", "?"),
               (long long)json_integer_value(json_object_get(sync, "wanted")),
               str_or(sync, "commit", "?"));
        if (k == 0) {
            printf("asynchronous%s\n", json_is_true(json_object_get(sync, "degraded"))
                                           ? " (degraded: too few healthy standbys)"
                                           : "");
        } else {
            printf("ANY %lld (", k);
            for (size_t v = 0; v < json_array_size(voters); v++) {
                printf("%s\"%s\"", v ? ", " : "", json_string_value(json_array_get(voters, v)));
            }
            printf(")\n");
        }
    }
}

enum list_format { LIST_PRETTY, LIST_JSON, LIST_TSV };

static int cmd_list(struct ctl *c, enum list_format format)
{
    bool as_json = format == LIST_JSON;
    bool tsv = format == LIST_TSV;
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl list: %s\n", errmsg);
        return 1;
    }
    if (as_json) {
        char *s = json_dumps(cluster, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s != NULL ? s : "{}");
        free(s);
        json_decref(cluster);
        return 0;
    }
    if (!tsv) {
        /* Tab-separated output is the table alone, for scripts. */
        print_summary(cluster);
    }
    const char *hdr[] = {"Member",
                         "Id",
                         "Host",
                         "Role",
                         "State",
                         "TL",
                         "Lag",
                         "Voting",
                         "Term",
                         "Raft",
                         "Storage",
                         "Pending restart",
                         "Scheduled restart"};
    enum { NCOL = 13, COL_PENDING = 11, COL_SCHEDULED = 12 };
    json_t *members = json_object_get(cluster, "members");
    size_t n = json_array_size(members);
    /* patronictl's "Pending restart" and "Scheduled restart" columns, only when a member has
     * one: the table stays the same for scripts otherwise. */
    bool show[NCOL];
    for (int i = 0; i < NCOL; i++) {
        show[i] = i < COL_PENDING;
    }
    for (size_t r = 0; r < n; r++) {
        json_t *m = json_array_get(members, r);
        show[COL_PENDING] = show[COL_PENDING] ||
                            json_is_true(json_object_get(m, "pending_restart"));
        show[COL_SCHEDULED] = show[COL_SCHEDULED] ||
                              json_is_object(json_object_get(m, "scheduled_restart"));
    }
    size_t width[NCOL];
    for (int i = 0; i < NCOL; i++) {
        width[i] = strlen(hdr[i]);
    }
    char(*cells)[NCOL][80] = calloc(n > 0 ? n : 1, sizeof *cells);
    if (cells == NULL) {
        json_decref(cluster);
        return 1;
    }
    for (size_t r = 0; r < n; r++) {
        json_t *m = json_array_get(members, r);
        snprintf(cells[r][0], 80, "%s", str_or(m, "name", "?"));
        snprintf(cells[r][1], 80, "%lld", (long long)json_integer_value(json_object_get(m, "id")));
        json_t *port = json_object_get(m, "port");
        if (json_is_integer(port)) {
            snprintf(cells[r][2], 80, "%s:%lld", str_or(m, "host", ""),
                     (long long)json_integer_value(port));
        } else {
            snprintf(cells[r][2], 80, "%s", str_or(m, "host", ""));
        }
        snprintf(cells[r][3], 80, "%s", str_or(m, "role", ""));
        snprintf(cells[r][4], 80, "%s", str_or(m, "state", ""));
        json_t *tl = json_object_get(m, "timeline");
        json_t *lag = json_object_get(m, "lag");
        if (json_is_integer(tl)) {
            snprintf(cells[r][5], 80, "%lld", (long long)json_integer_value(tl));
        }
        if (json_is_integer(lag)) {
            snprintf(cells[r][6], 80, "%lld", (long long)json_integer_value(lag));
        } else if (json_object_get(m, "lag") != NULL) {
            snprintf(cells[r][6], 80, "unknown");
        }
        snprintf(cells[r][7], 80, "%s", str_or(m, "voting", ""));
        snprintf(cells[r][8], 80, "%lld",
                 (long long)json_integer_value(json_object_get(m, "term")));
        snprintf(cells[r][9], 80, "%s", str_or(m, "raft_address", ""));
        snprintf(cells[r][10], 80, "%s", str_or(m, "raft_storage", ""));
        snprintf(cells[r][COL_PENDING], 80, "%s",
                 json_is_true(json_object_get(m, "pending_restart")) ? "*" : "");
        snprintf(cells[r][COL_SCHEDULED], 80, "%s",
                 str_or(json_object_get(m, "scheduled_restart"), "schedule", ""));
        for (int i = 0; i < NCOL; i++) {
            size_t l = strlen(cells[r][i]);
            width[i] = l > width[i] ? l : width[i];
        }
    }
    if (tsv) {
        for (size_t r = 0; r <= n; r++) {
            const char *sep = "";
            for (int i = 0; i < NCOL; i++) {
                if (show[i]) {
                    printf("%s%s", sep, r == 0 ? hdr[i] : cells[r - 1][i]);
                    sep = "\t";
                }
            }
            printf("\n");
        }
        free(cells);
        json_decref(cluster);
        return 0;
    }
    for (int i = 0; i < NCOL; i++) {
        if (show[i]) {
            printf("%s%-*s", i ? " | " : "| ", (int)width[i], hdr[i]);
        }
    }
    printf(" |\n");
    for (int i = 0; i < NCOL; i++) {
        if (show[i]) {
            printf("%s", i ? "-+-" : "+-");
            for (size_t k = 0; k < width[i]; k++) {
                putchar('-');
            }
        }
    }
    printf("-+\n");
    for (size_t r = 0; r < n; r++) {
        for (int i = 0; i < NCOL; i++) {
            if (show[i]) {
                printf("%s%-*s", i ? " | " : "| ", (int)width[i], cells[r][i]);
            }
        }
        printf(" |\n");
    }
    /* A member that cannot persist its Raft log, or whose state diverged, says why. */
    for (size_t r = 0; r < n; r++) {
        json_t *m = json_array_get(members, r);
        const char *err = str_or(m, "raft_storage_error", "");
        if (err[0] != '\0') {
            printf("%s: raft storage %s: %s\n", str_or(m, "name", "?"),
                   str_or(m, "raft_storage", "?"), err);
        }
        /* A member whose PostgreSQL is rejoining: the pipeline's stage (a clone's progress). */
        const char *rejoin = str_or(m, "rejoin", "");
        if (rejoin[0] != '\0') {
            printf("%s: rejoining: %s\n", str_or(m, "name", "?"), rejoin);
        }
        const char *poll = str_or(m, "poll_error", "");
        if (poll[0] != '\0') {
            printf("%s: unreachable: %s\n", str_or(m, "name", "?"), poll);
        }
        const char *ident = str_or(m, "identity_error", "");
        if (ident[0] != '\0') {
            printf("%s: identity: %s\n", str_or(m, "name", "?"), ident);
        }
    }
    free(cells);
    json_decref(cluster);
    return 0;
}

/* Sends a mutation to the leader, following one "not the leader" redirect per attempt. */
static int send_to_leader(struct ctl *c, const char *method, const char *path, const char *body,
                          int *status, json_t **answer, char *errmsg)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        json_t *cluster = fetch_cluster(c, errmsg);
        if (cluster == NULL) {
            return RPG_ECONN;
        }
        char api[FSM_ADDR_MAX];
        int rv = leader_api(cluster, api, sizeof api);
        const char *scope = json_string_value(json_object_get(cluster, "scope"));
        snprintf(c->scope, sizeof c->scope, "%s", scope != NULL ? scope : "");
        json_decref(cluster);
        if (rv != 0) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "the cluster has no leader right now");
            sleep_ms(300);
            continue;
        }
        char *resp = NULL;
        size_t len = 0;
        char auth[PROOF_AUTH_MAX] = "";
        rv = http_request_sync(api, method, path, body,
                               auth_for(c, method, path, body, auth, sizeof auth), c->timeout_ms,
                               status, &resp, &len, errmsg);
        if (rv != 0) {
            sleep_ms(300);
            continue;
        }
        json_error_t jerr;
        *answer = json_loadb(resp, len, 0, &jerr);
        free(resp);
        if (*status == 503) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: %s", api,
                     str_or(*answer, "error", "service unavailable"));
            json_decref(*answer);
            *answer = NULL;
            sleep_ms(300);
            continue;
        }
        return 0;
    }
    return RPG_ETIMEDOUT;
}

/* How long a member's identity_error must stay before a wait gives up on it: the flag comes from
 * the answering member's own poll of it, which can lag a restart by a poll or two. */
#define CTL_IDENTITY_GIVE_UP_S 3.0

/* Polls the cluster document until done() says so or the deadline passes. A member whose agent
 * runs under another Raft id than the cluster lists (identity_error) cannot get there until
 * restarted afresh: that ends the wait, printing the flag with its remedy; hint (or NULL) is
 * printed after a time-out otherwise. */
static int wait_for(struct ctl *c, const char *name,
                    bool (*done)(json_t *cluster, const char *name), const char *what,
                    const char *hint)
{
    double deadline = now_s() + (double)c->timeout_ms * 30 / 1000.0;
    char errmsg[RPG_ERRMSG_SIZE];
    char identity[1024] = "";
    double identity_since = 0;
    while (now_s() < deadline) {
        json_t *cluster = fetch_cluster(c, errmsg);
        bool ok = cluster != NULL && done(cluster, name);
        json_t *m = cluster != NULL ? find_member(cluster, name) : NULL;
        const char *ident = m != NULL ? str_or(m, "identity_error", "") : "";
        if (cluster != NULL && ident[0] == '\0') {
            identity[0] = '\0';
        } else if (ident[0] != '\0') {
            if (identity[0] == '\0') {
                identity_since = now_s();
            }
            snprintf(identity, sizeof identity, "%s", ident);
        }
        json_decref(cluster);
        if (ok) {
            return 0;
        }
        if (identity[0] != '\0' && now_s() - identity_since >= CTL_IDENTITY_GIVE_UP_S) {
            break;
        }
        sleep_ms(200);
    }
    if (identity[0] != '\0') {
        fprintf(stderr, "raftpg ctl: stopped waiting for %s %s: identity: %s\n", name, what,
                identity);
    } else {
        fprintf(stderr, "raftpg ctl: timed out waiting for %s %s%s%s\n", name, what,
                hint != NULL ? " " : "", hint != NULL ? hint : "");
    }
    return 1;
}

static bool is_voter(json_t *cluster, const char *name)
{
    json_t *m = find_member(cluster, name);
    return m != NULL && strcmp(str_or(m, "voting", ""), "voter") == 0;
}

static bool is_gone(json_t *cluster, const char *name)
{
    return find_member(cluster, name) == NULL;
}

/* The leader's own cluster document: its state holds everything committed (a follower's may lag,
 * an old leader's may be gone). NULL while no leader answers. */
static json_t *leader_cluster(struct ctl *c)
{
    char errmsg[RPG_ERRMSG_SIZE], api[FSM_ADDR_MAX];
    json_t *any = fetch_cluster(c, errmsg);
    int rv = any != NULL ? leader_api(any, api, sizeof api) : RPG_ENOTFOUND;
    json_decref(any);
    if (rv != 0) {
        return NULL;
    }
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    if (http_request_sync(api, "GET", "/cluster", NULL, NULL, c->timeout_ms, &status, &body, &len,
                          errmsg) != 0) {
        return NULL;
    }
    json_error_t jerr;
    json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
    free(body);
    /* A leader that has not committed its own-term barrier may not have applied the previous
     * term's entries yet: it would call a change that commits a moment later not done. An agent
     * without leader_ready (older) is taken at its state_known. */
    json_t *r = json_object_get(o, "raft");
    json_t *ready = json_object_get(r, "leader_ready");
    bool is_leader = strcmp(str_or(r, "role", ""), "leader") == 0 &&
                     json_is_true(json_object_get(r, "state_known")) &&
                     (ready == NULL || json_is_true(ready));
    if (!is_leader) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* After a request whose answer was lost (the leader died or changed under it), what did the
 * cluster commit? 1: done() holds in a leader's state, 0: it does not, -1: no leader answered
 * in time. */
static int committed(struct ctl *c, const char *name,
                     bool (*done)(json_t *cluster, const char *name))
{
    double deadline = now_s() + (double)c->timeout_ms * 10 / 1000.0;
    while (now_s() < deadline) {
        json_t *o = leader_cluster(c);
        if (o != NULL) {
            int r = done(o, name) ? 1 : 0;
            json_decref(o);
            return r;
        }
        sleep_ms(300);
    }
    return -1;
}

static bool is_listed(json_t *cluster, const char *name)
{
    return find_member(cluster, name) != NULL;
}

static int cmd_member_add(struct ctl *c, const char *name, const char *raft, const char *api,
                          bool wait)
{
    char host[16];
    uint16_t port;
    if (api_check_name(name) != 0) {
        fprintf(stderr,
                "raftpg ctl member add: NAME: expected 1..63 characters of "
                "[A-Za-z0-9_.-], got \"%s\"\n",
                name);
        return 2;
    }
    if (raft == NULL || conf_parse_addr(raft, host, &port) != 0) {
        fprintf(stderr, "raftpg ctl member add: --raft: expected IPv4 address:port, got \"%s\"\n",
                raft != NULL ? raft : "");
        return 2;
    }
    if (api == NULL || conf_parse_addr(api, host, &port) != 0) {
        fprintf(stderr, "raftpg ctl member add: --api: expected IPv4 address:port, got \"%s\"\n",
                api != NULL ? api : "");
        return 2;
    }
    json_t *req = json_pack("{s:s, s:s, s:s}", "name", name, "raft", raft, "api", api);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = send_to_leader(c, "POST", "/members", body, &status, &answer, errmsg);
    free(body);
    if (rv != 0) {
        /* The answer is lost, not necessarily the change: ask the leader's state. */
        int r = committed(c, name, is_listed);
        if (r == 1) {
            printf("member %s added (no answer came: %s; the leader's state lists it)\n", name,
                   errmsg);
            status = 201;
        } else {
            fprintf(stderr, "raftpg ctl member add: %s; %s\n", errmsg,
                    r == 0 ? "the leader's state does not list it: the addition was not "
                             "committed, run the command again"
                           : "no leader answered since: whether it was added is not known yet, "
                             "see raftpg ctl list");
            return 1;
        }
    }
    if (status != 201) {
        fprintf(stderr, "raftpg ctl member add: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    printf("member %s added; ", name);
    if (!wait) {
        printf("it becomes a voter once it runs and has caught up\n");
        return 0;
    }
    printf("waiting for it to catch up and become a voter...\n");
    fflush(stdout);
    rv = wait_for(c, name, is_voter, "to become a voter", "(is its agent running?)");
    if (rv == 0) {
        printf("member %s is a voter\n", name);
    }
    return rv;
}

static int cmd_member_remove(struct ctl *c, const char *name, bool wait)
{
    if (api_check_name(name) != 0) {
        fprintf(stderr,
                "raftpg ctl member remove: NAME: expected 1..63 characters of "
                "[A-Za-z0-9_.-], got \"%s\"\n",
                name);
        return 2;
    }
    char path[FSM_NAME_MAX + 16];
    snprintf(path, sizeof path, "/members/%s", name);
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    /* The leader answers once the member has left the synchronous set and its removal is
     * committed, which can take a few seconds. */
    /* Asked of the leader: a follower may not have applied a recent addition yet. */
    json_t *before = leader_cluster(c);
    if (before != NULL && json_object_get(before, "members") != NULL &&
        find_member(before, name) == NULL) {
        fprintf(stderr, "raftpg ctl member remove: no member named \"%s\"\n", name);
        json_decref(before);
        return 1;
    }
    json_decref(before);
    unsigned saved = c->timeout_ms;
    c->timeout_ms = saved > 35000 ? saved : 35000;
    int rv = send_to_leader(c, "DELETE", path, NULL, &status, &answer, errmsg);
    c->timeout_ms = saved;
    if (rv != 0 || status == 404) {
        /* The answer is lost, or a retry found it gone: ask the leader's state what holds. */
        int r = committed(c, name, is_gone);
        if (r == 1) {
            printf("member %s removed (%s; the leader's state no longer lists it)\n", name,
                   rv != 0 ? errmsg : "already gone when asked again");
            json_decref(answer);
            return 0;
        }
        fprintf(stderr, "raftpg ctl member remove: %s; %s\n",
                rv != 0 ? errmsg : str_or(answer, "error", "not found"),
                r == 0 ? "the leader's state still lists it: the removal was not committed, run "
                         "the command again"
                       : "no leader answered since: whether it was removed is not known yet, "
                         "see raftpg ctl list");
        json_decref(answer);
        return 1;
    }
    if (status == 202) {
        fprintf(stderr, "raftpg ctl member remove: %s: %s\n", name, str_or(answer, "result", "?"));
        json_decref(answer);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl member remove: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    printf("member %s removed from the cluster state and the raft configuration\n", name);
    if (!wait) {
        return 0;
    }
    rv = wait_for(c, name, is_gone, "to leave", NULL);
    if (rv == 0) {
        printf("member %s has left\n", name);
    }
    return rv;
}

/* GET /config from the first endpoint that answers, or NULL with errmsg. */
static json_t *fetch_config(struct ctl *c, char *errmsg)
{
    snprintf(errmsg, RPG_ERRMSG_SIZE, "no API endpoint");
    for (unsigned i = 0; i < c->n_endpoints; i++) {
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        if (http_request_sync(c->endpoints[i], "GET", "/config", NULL, NULL, c->timeout_ms, &status,
                              &body, &len, errmsg) != 0) {
            continue;
        }
        json_error_t jerr;
        json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        free(body);
        if (json_is_object(o)) {
            return o;
        }
        json_decref(o);
        snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: unexpected answer to GET /config (http %d)",
                 c->endpoints[i], status);
    }
    return NULL;
}

/* GET /config from the leader: what a change made there next replaces (a follower may not have
 * applied the last change yet). NULL with errmsg. */
static json_t *leader_config(struct ctl *c, char *errmsg)
{
    int status = 0;
    json_t *answer = NULL;
    if (send_to_leader(c, "GET", "/config", NULL, &status, &answer, errmsg) != 0) {
        return NULL;
    }
    if (status != 200 || !json_is_object(answer)) {
        snprintf(errmsg, RPG_ERRMSG_SIZE,
                 "unexpected answer to GET /config from the leader (http %d)", status);
        json_decref(answer);
        return NULL;
    }
    return answer;
}

static int cmd_show_config(struct ctl *c)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *o = fetch_config(c, errmsg);
    if (o == NULL) {
        fprintf(stderr, "raftpg ctl show-config: no member answered: %s\n", errmsg);
        return 1;
    }
    cfgdoc_print(stdout, o);
    json_decref(o);
    return 0;
}

#define PARAMS_PREFIX "postgresql.parameters."

/* KEY=VALUE pairs become one JSON object (a PATCH /config body); numbers stay numbers. A -p
 * NAME=VALUE pair (pg set), or -s postgresql.parameters.NAME=VALUE, goes into {"postgresql":
 * {"parameters": {...}}} as a string, null when VALUE is null (Patroni's way to remove one).
 * NULL after an error on stderr. */
static json_t *pairs_to_json(char **pairs, const bool *pg, int n)
{
    json_t *o = json_object();
    json_t *params = json_object();
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        if (eq == NULL || eq == pairs[i]) {
            fprintf(stderr, "raftpg ctl edit-config: expected %s=VALUE, got \"%s\"\n",
                    pg[i] ? "NAME" : "KEY", pairs[i]);
            json_decref(o);
            json_decref(params);
            return NULL;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - pairs[i]), pairs[i]);
        const char *name = pg[i] ? key : NULL;
        if (!pg[i] && strncmp(key, PARAMS_PREFIX, strlen(PARAMS_PREFIX)) == 0) {
            name = key + strlen(PARAMS_PREFIX);
        }
        if (name != NULL) {
            json_object_set_new(params, name,
                                strcmp(eq + 1, "null") == 0 ? json_null() : json_string(eq + 1));
            continue;
        }
        char *end = NULL;
        long long v = strtoll(eq + 1, &end, 10);
        if (strcmp(eq + 1, "null") == 0) {
            /* Patroni's way to remove a key (maximum_lag_on_failover=null: no limit). */
            json_object_set_new(o, key, json_null());
            continue;
        }
        json_object_set_new(o, key,
                            eq[1] != '\0' && *end == '\0' ? json_integer(v) : json_string(eq + 1));
    }
    if (json_object_size(params) > 0) {
        json_object_set_new(o, "postgresql", json_pack("{s:o}", "parameters", params));
    } else {
        json_decref(params);
    }
    return o;
}

/* -s and -p alone: one PATCH /config at once, the settings in force printed (scripts rely on
 * it not asking). */
static int set_config(struct ctl *c, char **pairs, const bool *pg, int n)
{
    json_t *o = pairs_to_json(pairs, pg, n);
    if (o == NULL) {
        return 2;
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = body != NULL ? send_to_leader(c, "PATCH", "/config", body, &status, &answer, errmsg)
                          : RPG_ENOMEM;
    free(body);
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl edit-config: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    cfgdoc_print(stdout, answer);
    json_decref(answer);
    return 0;
}

/* A document larger than this is not a configuration. */
#define EDIT_DOC_MAX (1024 * 1024)

/* The whole of path ("-": stdin) into *text (the caller frees it), NUL-terminated. */
static int read_doc(const char *path, char **text, size_t *len, char *errmsg)
{
    bool in = strcmp(path, "-") == 0;
    FILE *f = in ? stdin : fopen(path, "r");
    if (f == NULL) {
        return rpg_err(errmsg, RPG_EIO, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(EDIT_DOC_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, EDIT_DOC_MAX + 1, f) : 0;
    int rc = 0;
    if (buf == NULL) {
        rc = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", path);
    } else if (ferror(f)) {
        rc = rpg_err(errmsg, RPG_EIO, "%s: %s", in ? "stdin" : path, strerror(errno));
    } else if (n > EDIT_DOC_MAX) {
        rc = rpg_err(errmsg, RPG_EINVAL, "%s: larger than %d bytes", in ? "stdin" : path,
                     EDIT_DOC_MAX);
    }
    if (!in) {
        fclose(f);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* read_doc, then cfgdoc_parse: the document as JSON, or NULL after an error on stderr. */
static json_t *load_doc(const char *path)
{
    char errmsg[RPG_ERRMSG_SIZE];
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    int rc = read_doc(path, &text, &len, errmsg);
    if (rc == 0) {
        rc = cfgdoc_parse(text, len, strcmp(path, "-") == 0 ? "<stdin>" : path, &doc, errmsg);
    }
    free(text);
    if (rc != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        return NULL;
    }
    return doc;
}

/* Two PATCH bodies into one: objects key by key, anything else (null included) replaces. */
static void patch_combine(json_t *dst, json_t *p)
{
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v) {
        json_t *d = json_object_get(dst, k);
        if (json_is_object(v) && json_is_object(d)) {
            patch_combine(d, v);
        } else {
            json_object_set_new(dst, k, json_deep_copy(v));
        }
    }
}

/* patronictl's editor: EDITOR, else editor or vi from PATH; NULL when there is none. */
static const char *find_editor(char *buf, size_t size)
{
    const char *ed = getenv("EDITOR");
    if (ed != NULL && ed[0] != '\0') {
        return ed;
    }
    const char *path = getenv("PATH");
    const char *const names[] = {"editor", "vi"};
    for (size_t k = 0; k < 2; k++) {
        for (const char *p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0';) {
            size_t dl = strcspn(p, ":");
            snprintf(buf, size, "%.*s/%s", (int)dl, dl > 0 ? p : ".", names[k]);
            if (access(buf, X_OK) == 0) {
                return buf;
            }
            p += dl + (p[dl] == ':');
        }
    }
    return NULL;
}

/* Runs the editor on path and waits for it. The command is read by sh, so EDITOR may carry
 * arguments ("vim -u NONE", say), as git reads it. */
static int run_editor(const char *editor, const char *path, char *errmsg)
{
    pid_t pid = fork();
    if (pid < 0) {
        return rpg_err(errmsg, RPG_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exec $1 \"$2\"", "sh", editor, path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            return rpg_err(errmsg, RPG_EIO, "waiting for the editor: %s", strerror(errno));
        }
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        return 0;
    }
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 127 || WEXITSTATUS(st) == 126)) {
        return rpg_err(errmsg, RPG_EIO, "editor \"%s\" could not be run (exit %d; EDITOR names it)",
                       editor, WEXITSTATUS(st));
    }
    if (WIFEXITED(st)) {
        return rpg_err(errmsg, RPG_EIO, "editor \"%s\" exited with status %d", editor,
                       WEXITSTATUS(st));
    }
    return rpg_err(errmsg, RPG_EIO, "editor \"%s\" was killed by signal %d", editor,
                   WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The configuration as text in a private temporary file (0600), the editor on it, the text
 * back. On a document that does not parse, the file is kept and named, so that the edit is not
 * lost. Returns 0 with *after and *doc, or 1 after an error on stderr. */
static int edit_in_editor(const char *before, char **after, json_t **doc)
{
    char errmsg[RPG_ERRMSG_SIZE], found[4096];
    const char *editor = find_editor(found, sizeof found);
    if (editor == NULL) {
        fprintf(stderr, "raftpg ctl edit-config: EDITOR is not set and neither editor nor vi is "
                        "on PATH (or give -s, -p, --apply or --replace)\n");
        return 1;
    }
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/raftpg-config-XXXXXX.yaml",
             dir != NULL && dir[0] != '\0' ? dir : "/tmp");
    int fd = mkstemps(path, 5);
    if (fd < 0) {
        fprintf(stderr, "raftpg ctl edit-config: cannot create a temporary file in %s: %s\n",
                dir != NULL && dir[0] != '\0' ? dir : "/tmp", strerror(errno));
        return 1;
    }
    size_t len = strlen(before), off = 0;
    while (off < len) {
        ssize_t w = write(fd, before + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            fprintf(stderr, "raftpg ctl edit-config: writing %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return 1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "raftpg ctl edit-config: writing %s: %s\n", path, strerror(errno));
        unlink(path);
        return 1;
    }
    int rc = run_editor(editor, path, errmsg);
    if (rc == 0) {
        rc = read_doc(path, after, &len, errmsg);
    }
    if (rc != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s; nothing changed\n", errmsg);
        unlink(path);
        return 1;
    }
    if (cfgdoc_parse(*after, len, path, doc, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s; nothing changed (the edit is kept in %s)\n",
                errmsg, path);
        free(*after);
        *after = NULL;
        return 1;
    }
    unlink(path);
    return 0;
}

/* patronictl's click.confirm: y or yes applies; n, no or nothing does not; anything else asks
 * again. End of input (no terminal, stdin from /dev/null) is an answer too: no. */
static int confirm(const char *question)
{
    char *line = NULL;
    size_t cap = 0;
    int rv = -1;
    for (int tries = 0; tries < 10 && rv < 0; tries++) {
        printf("%s [y/N]: ", question);
        fflush(stdout);
        if (getline(&line, &cap, stdin) < 0) {
            printf("\n");
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0) {
            rv = 1;
        } else if (line[0] == '\0' || strcasecmp(line, "n") == 0 || strcasecmp(line, "no") == 0) {
            rv = 0;
        } else {
            printf("Error: invalid input\n");
        }
    }
    free(line);
    return rv;
}

struct edit_opts {
    char **pairs;
    const bool *pg;
    int n;
    const char *apply;   /* --apply FILE: merged (PATCH) */
    const char *replace; /* --replace FILE: the whole configuration (PUT) */
    bool force;
    bool quiet;
};

/* patronictl edit-config: the configuration as show-config prints it, changed by the editor
 * (replaces it: PUT), by --replace (PUT) or by --apply and -s/-p (merged: PATCH); the diff,
 * then the change once confirmed. Validation is the leader's, as for every change. */
static int cmd_edit_config(struct ctl *c, const struct edit_opts *e)
{
    if (e->n > 0 && e->apply == NULL && e->replace == NULL) {
        return set_config(c, e->pairs, e->pg, e->n);
    }
    if (e->apply != NULL && e->replace != NULL && strcmp(e->apply, "-") == 0 &&
        strcmp(e->replace, "-") == 0) {
        fprintf(stderr, "raftpg ctl edit-config: --apply and --replace cannot both read stdin\n");
        return 2;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *current = leader_config(c, errmsg);
    if (current == NULL) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        return 1;
    }
    int rc = 1;
    char *before = cfgdoc_format(current), *after = NULL, *edited = NULL, *body = NULL;
    json_t *send = NULL, *changed = NULL, *now = NULL;
    bool put = e->replace != NULL || (e->apply == NULL && e->n == 0);
    if (before == NULL) {
        fprintf(stderr, "raftpg ctl edit-config: out of memory\n");
        goto out;
    }
    if (e->replace != NULL || e->apply != NULL || e->n > 0) {
        /* patronictl's order: the replacement, then the file applied, then the pairs. */
        send = e->replace != NULL ? load_doc(e->replace) : json_object();
        json_t *patch = e->apply != NULL ? load_doc(e->apply) : json_object();
        json_t *pairs = e->n > 0 ? pairs_to_json(e->pairs, e->pg, e->n) : json_object();
        if (send == NULL || patch == NULL || pairs == NULL) {
            json_decref(patch);
            json_decref(pairs);
            rc = send == NULL || patch == NULL ? 1 : 2;
            goto out;
        }
        patch_combine(patch, pairs);
        json_decref(pairs);
        if (put) {
            cfgdoc_merge(send, patch);
            changed = json_deep_copy(send);
        } else {
            patch_combine(send, patch);
            changed = json_deep_copy(current);
            cfgdoc_merge(changed, patch);
        }
        json_decref(patch);
        after = cfgdoc_format(changed);
    } else {
        if (edit_in_editor(before, &edited, &send) != 0) {
            goto out;
        }
        changed = json_incref(send);
        after = cfgdoc_format(changed);
    }
    if (after == NULL) {
        fprintf(stderr, "raftpg ctl edit-config: out of memory\n");
        goto out;
    }
    /* Compared as show-config would print them: a comment, a blank line or quotes the editor
     * added change nothing. */
    if (strcmp(before, after) == 0) {
        if (!e->quiet) {
            printf("Not changed\n");
        }
        rc = 0;
        goto out;
    }
    if (!e->quiet) {
        cfgdoc_diff(stdout, before, edited != NULL ? edited : after, "current", "new");
    }
    /* What follows on stderr comes after the diff, also when both go to one file. */
    fflush(stdout);
    bool from_stdin = (e->apply != NULL && strcmp(e->apply, "-") == 0) ||
                      (e->replace != NULL && strcmp(e->replace, "-") == 0);
    if (!e->force && from_stdin) {
        /* stdin held the document: it cannot also answer the question. */
        printf("Use --force option to apply changes\n");
        goto out;
    }
    if (!e->force) {
        int yes = confirm("Apply these changes?");
        if (yes <= 0) {
            printf(yes < 0 ? "Aborted! (no answer; nothing changed, --force applies without "
                             "asking)\n"
                           : "Not applied\n");
            goto out;
        }
    }
    /* Someone else's change since it was read would be undone by this one: refuse instead
     * (patronictl compares the DCS version). */
    now = leader_config(c, errmsg);
    char *again = now != NULL ? cfgdoc_format(now) : NULL;
    bool moved = again == NULL || strcmp(again, before) != 0;
    free(again);
    if (moved) {
        fprintf(stderr, "raftpg ctl edit-config: %s; nothing changed\n",
                now == NULL ? errmsg
                            : "the configuration changed since it was read: run edit-config again");
        goto out;
    }
    body = json_dumps(send, JSON_COMPACT);
    int status = 0;
    json_t *answer = NULL;
    int rv = body != NULL ? send_to_leader(c, put ? "PUT" : "PATCH", "/config", body, &status,
                                           &answer, errmsg)
                          : rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        goto out;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl edit-config: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        goto out;
    }
    json_decref(answer);
    printf("Configuration changed\n");
    rc = 0;
out:
    free(before);
    free(after);
    free(edited);
    free(body);
    json_decref(send);
    json_decref(changed);
    json_decref(now);
    json_decref(current);
    return rc;
}

/* The member's API address from its api_url, into out. */
static void api_of(json_t *m, char *out, size_t size)
{
    const char *url = str_or(m, "api_url", "");
    snprintf(out, size, "%s",
             strncmp(url, "http://", 7) == 0    ? url + 7
             : strncmp(url, "https://", 8) == 0 ? url + 8
                                                : url);
    char *slash = strchr(out, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
}

/* GET path from a member of the cluster document: its JSON answer (200 only), or NULL with
 * errmsg. */
static json_t *member_get(struct ctl *c, json_t *m, const char *path, char *errmsg)
{
    char api[FSM_ADDR_MAX];
    api_of(m, api, sizeof api);
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    if (http_request_sync(api, "GET", path, NULL, NULL, c->timeout_ms, &status, &body, &len,
                          errmsg) == 0) {
        json_error_t jerr;
        doc = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        if (doc == NULL) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: unexpected answer to GET %s (http %d)", api,
                     path, status);
        }
    }
    free(body);
    return doc;
}

/* Whether every member the cluster lists answers GET /status with "pause" as wanted. */
static bool all_paused(struct ctl *c, bool want, char *lagging, size_t size)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        snprintf(lagging, size, "no member answered: %.200s", errmsg);
        return false;
    }
    bool ok = true;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        json_t *st = member_get(c, m, "/status", errmsg);
        json_t *p = json_object_get(st, "pause");
        if (!json_is_boolean(p) || json_is_true(p) != want) {
            snprintf(lagging, size, "%s has not applied it yet", str_or(m, "name", "?"));
            ok = false;
        }
        json_decref(st);
        if (!ok) {
            break;
        }
    }
    json_decref(cluster);
    return ok;
}

/* patronictl version: this program's, then each member's as its /patroni document says. */
static int cmd_version(struct ctl *c)
{
    printf("raftpg ctl version %s\n", RAFTPG_VERSION);
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl version: %s\n", errmsg);
        return 1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        json_t *doc = member_get(c, m, "/patroni", errmsg);
        json_t *p = json_object_get(doc, "patroni");
        json_t *pg = json_object_get(doc, "server_version");
        if (p != NULL) {
            printf("%s: raftpg %s", str_or(m, "name", "?"), str_or(p, "version", "?"));
            if (json_is_integer(pg)) {
                long long v = (long long)json_integer_value(pg);
                printf(" PostgreSQL %lld.%lld", v / 10000, v % 10000);
            }
            printf("\n");
        } else {
            printf("%s: no answer (%s)\n", str_or(m, "name", "?"), errmsg);
        }
        json_decref(doc);
    }
    json_decref(cluster);
    return 0;
}

/* Who streams from whom: the primary, then the other members beneath it (raftpg runs no
 * cascading replication: every standby streams from the primary). */
static int cmd_topology(struct ctl *c)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl topology: %s\n", errmsg);
        return 1;
    }
    json_t *members = json_object_get(cluster, "members");
    const char *primary = str_or(json_object_get(cluster, "primary"), "name", "");
    size_t i;
    json_t *m;
    printf("Cluster: %s\n", str_or(cluster, "scope", "?"));
    json_array_foreach(members, i, m) {
        if (strcmp(str_or(m, "name", ""), primary) == 0) {
            printf("%s  [%s, %s, timeline %lld]\n", primary, str_or(m, "role", "?"),
                   str_or(m, "state", "?"),
                   (long long)json_integer_value(json_object_get(m, "timeline")));
        }
    }
    if (primary[0] == '\0') {
        printf("(no primary recorded)\n");
    }
    json_array_foreach(members, i, m) {
        const char *name = str_or(m, "name", "?");
        if (strcmp(name, primary) == 0) {
            continue;
        }
        json_t *lag = json_object_get(m, "lag");
        printf("+ %s  [%s, %s", name, str_or(m, "role", "?"), str_or(m, "state", "?"));
        if (json_is_integer(lag)) {
            printf(", lag %lld bytes", (long long)json_integer_value(lag));
        }
        printf("]\n");
    }
    json_decref(cluster);
    return 0;
}

/* A signed POST to one member's API; the answer's JSON in *answer. */
static int post_member(struct ctl *c, const char *api, const char *path, const char *body,
                       unsigned timeout_ms, int *status, json_t **answer, char *errmsg)
{
    char auth[PROOF_AUTH_MAX] = "";
    char *resp = NULL;
    size_t len = 0;
    int rv = http_request_sync(api, "POST", path, body,
                               auth_for(c, "POST", path, body, auth, sizeof auth), timeout_ms,
                               status, &resp, &len, errmsg);
    if (rv != 0) {
        return rv;
    }
    json_error_t jerr;
    *answer = json_loadb(resp, len, 0, &jerr);
    free(resp);
    return 0;
}

/* A signed request with any method to one member's API (DELETE /restart, say). */
static int call_member(struct ctl *c, const char *method, const char *api, const char *path,
                       int *status, json_t **answer, char *errmsg)
{
    char auth[PROOF_AUTH_MAX] = "";
    char *resp = NULL;
    size_t len = 0;
    int rv = http_request_sync(api, method, path, NULL,
                               auth_for(c, method, path, NULL, auth, sizeof auth), c->timeout_ms,
                               status, &resp, &len, errmsg);
    if (rv != 0) {
        return rv;
    }
    json_error_t jerr;
    *answer = json_loadb(resp, len, 0, &jerr);
    free(resp);
    return 0;
}

static bool is_streaming(json_t *cluster, const char *name)
{
    json_t *m = find_member(cluster, name);
    return m != NULL && strcmp(str_or(m, "state", ""), "streaming") == 0;
}

/* patronictl reinit: asked of the member itself, which clones the primary again. */
static int cmd_reinit(struct ctl *c, const char *name, bool wait)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    json_t *m = cluster != NULL ? find_member(cluster, name) : NULL;
    if (m == NULL) {
        fprintf(stderr, "raftpg ctl reinit: %s\n",
                cluster == NULL ? errmsg : "no such member in the cluster");
        json_decref(cluster);
        return 1;
    }
    char api[FSM_ADDR_MAX];
    api_of(m, api, sizeof api);
    const char *scope = json_string_value(json_object_get(cluster, "scope"));
    snprintf(c->scope, sizeof c->scope, "%s", scope != NULL ? scope : "");
    json_decref(cluster);
    int status = 0;
    json_t *answer = NULL;
    if (post_member(c, api, "/reinitialize", NULL, c->timeout_ms, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl reinit: %s\n", errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl reinit: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    printf("%s: %s\n", name, str_or(answer, "message", "reinitialize started"));
    json_decref(answer);
    if (!wait) {
        return 0;
    }
    /* The member leaves streaming first (its server stops), then streams again. */
    sleep_ms(500);
    if (wait_for(c, name, is_streaming, "to stream again", NULL) != 0) {
        return 1;
    }
    printf("%s streams again\n", name);
    return 0;
}

/* What a command does with one member (api: its API address): prints the member's line;
 * returns true when it failed. */
typedef bool (*member_action)(struct ctl *c, const char *name, const char *api, void *arg);

/* patronictl's loop over the members a command names (every member without names), in the
 * cluster's order, the primary last when primary_last (a rolling restart). A name the cluster
 * does not list stops the command before any member is asked. Returns the command's exit status:
 * 1 when no member answered, a name is unknown or an action failed; verb names the command in
 * errors. */
static int each_member(struct ctl *c, const char *verb, char **names, int n, bool primary_last,
                       member_action act, void *arg)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb, errmsg);
        return 1;
    }
    const char *scope = json_string_value(json_object_get(cluster, "scope"));
    snprintf(c->scope, sizeof c->scope, "%s", scope != NULL ? scope : "");
    for (int k = 0; k < n; k++) {
        if (find_member(cluster, names[k]) == NULL) {
            fprintf(stderr, "raftpg ctl %s: %s is not a member of the cluster\n", verb, names[k]);
            json_decref(cluster);
            return 1;
        }
    }
    int failed = 0;
    /* Pass 0: every member but the primary; pass 1: the primary (or everyone, in one pass). */
    for (int pass = primary_last ? 0 : 1; pass < 2; pass++) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(cluster, "members"), i, m) {
            const char *name = str_or(m, "name", "?");
            bool primary = strcmp(str_or(m, "pg_role", ""), "primary") == 0;
            if (primary_last && primary != (pass == 1)) {
                continue;
            }
            bool wanted = n == 0;
            for (int k = 0; k < n && !wanted; k++) {
                wanted = strcmp(names[k], name) == 0;
            }
            if (!wanted) {
                continue;
            }
            char api[FSM_ADDR_MAX];
            api_of(m, api, sizeof api);
            failed += act(c, name, api, arg) ? 1 : 0;
        }
    }
    json_decref(cluster);
    return failed > 0 ? 1 : 0;
}

struct restart_request {
    const char *body;
    bool later;
    unsigned wait_ms; /* the agent answers within its stop bound and the timeout (or its 60 s) */
};

static bool restart_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    const struct restart_request *r = arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (post_member(c, api, "/restart", r->body, r->wait_ms, &status, &answer, errmsg) != 0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (r->later && status == 202) {
        printf("%s: %s at %s\n", name, str_or(answer, "message", "Restart scheduled"),
               str_or(json_object_get(answer, "scheduled_restart"), "schedule", "?"));
    } else if (status == 200) {
        printf("%s: %s\n", name, str_or(answer, "message", "restarted"));
    } else if (status == 412) {
        printf("%s: skipped: %s\n", name, str_or(answer, "error", "?"));
    } else {
        printf("%s: failed (http %d): %s\n", name, status, str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl restart: one member at a time, standbys first, the primary last; each answers once
 * its server accepts connections again. With scheduled (and not "now"), every member named (or
 * all) records the restart at that time and answers at once. */
static int cmd_restart(struct ctl *c, char **names, int n, const char *role, bool pending,
                       const char *version, const char *scheduled, const char *timeout)
{
    char errmsg[RPG_ERRMSG_SIZE];
    unsigned timeout_s = 0;
    if (timeout != NULL && schedule_parse_timeout(timeout, &timeout_s, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl restart: --timeout: %s\n", errmsg);
        return 2;
    }
    bool later = scheduled != NULL && strcmp(scheduled, "now") != 0;
    char when[48] = "";
    if (later) {
        /* patronictl's reading: a time without a zone is local time. */
        int64_t at_ms;
        if (schedule_parse_time(scheduled, true, &at_ms, errmsg) != 0) {
            fprintf(stderr, "raftpg ctl restart: --scheduled: %s\n", errmsg);
            return 2;
        }
        schedule_format_time(at_ms, when, sizeof when);
    }
    json_t *body = json_object();
    if (role != NULL) {
        json_object_set_new(body, "role", json_string(role));
    }
    if (pending) {
        json_object_set_new(body, "restart_pending", json_true());
    }
    if (version != NULL) {
        json_object_set_new(body, "postgres_version", json_string(version));
    }
    if (later) {
        json_object_set_new(body, "schedule", json_string(when));
    }
    if (timeout_s > 0) {
        json_object_set_new(body, "timeout", json_integer((json_int_t)timeout_s));
    }
    /* 10 s of stop, the wait, and some. */
    unsigned wait_ms = timeout_s > 60 ? timeout_s * 1000 + 20000 : 80000;
    struct restart_request r = {
        .body = json_dumps(body, JSON_COMPACT), .later = later, .wait_ms = wait_ms};
    json_decref(body);
    int rc = each_member(c, "restart", names, n, true, restart_member, &r);
    free((char *)r.body);
    return rc;
}

static bool flush_restart_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    (void)arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (call_member(c, "DELETE", api, "/restart", &status, &answer, errmsg) != 0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (status == 200) {
        printf("Success: flush scheduled restart for member %s\n", name);
    } else if (status == 404) {
        printf("%s: no scheduled restart\n", name);
    } else {
        printf("%s: failed (http %d): %s\n", name, status, str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl flush restart: DELETE /restart on every member named (or all). */
static int cmd_flush_restart(struct ctl *c, char **names, int n)
{
    return each_member(c, "flush", names, n, false, flush_restart_member, NULL);
}

/* A scheduled switchover (scheduled_at): recorded by the leader, answered at once. */
static int schedule_switchover(struct ctl *c, const char *body)
{
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    if (send_to_leader(c, "POST", "/switchover", body, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl switchover: %s\n", errmsg);
        return 1;
    }
    if (status != 202) {
        fprintf(stderr, "raftpg ctl switchover: refused (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_t *w = json_object_get(answer, "scheduled_switchover");
    printf("%s at %s (from %s to %s)\n", str_or(answer, "message", "Switchover scheduled"),
           str_or(w, "at", "?"), str_or(w, "from", "the primary then"),
           str_or(w, "to", "the best standby then"));
    json_decref(answer);
    return 0;
}

/* patronictl flush switchover: DELETE /switchover through the leader. */
static int cmd_flush_switchover(struct ctl *c)
{
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    if (send_to_leader(c, "DELETE", "/switchover", NULL, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl flush: %s\n", errmsg);
        return 1;
    }
    int rc = 0;
    if (status == 200) {
        printf("Success: %s\n", str_or(answer, "message", "scheduled switchover deleted"));
    } else if (status == 404) {
        printf("No pending scheduled switchover\n");
    } else {
        fprintf(stderr, "raftpg ctl flush: failed (http %d): %s\n", status,
                str_or(answer, "error", "?"));
        rc = 1;
    }
    json_decref(answer);
    return rc;
}

/* POSTs body (NULL: out of memory) to path on the Raft leader, waiting at least min_timeout_ms
 * (the agent bounds each step itself), and prints its message (done_text without one); 200 and
 * 202 are success. Returns ctl's exit code. */
static int post_to_leader(struct ctl *c, const char *verb, const char *path, const char *body,
                          unsigned min_timeout_ms, const char *done_text)
{
    char errmsg[RPG_ERRMSG_SIZE] = "out of memory";
    json_t *cluster = body != NULL ? fetch_cluster(c, errmsg) : NULL;
    char api[FSM_ADDR_MAX];
    if (cluster == NULL || leader_api(cluster, api, sizeof api) != 0) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb,
                cluster == NULL ? errmsg : "the cluster has no raft leader right now");
        json_decref(cluster);
        return 1;
    }
    const char *scope = json_string_value(json_object_get(cluster, "scope"));
    snprintf(c->scope, sizeof c->scope, "%s", scope != NULL ? scope : "");
    json_decref(cluster);
    int status = 0;
    json_t *answer = NULL;
    unsigned timeout = c->timeout_ms > min_timeout_ms ? c->timeout_ms : min_timeout_ms;
    if (post_member(c, api, path, body, timeout, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl %s: %s (see raftpg ctl list)\n", verb, errmsg);
        return 1;
    }
    if (status != 200 && status != 202) {
        fprintf(stderr, "raftpg ctl %s: refused (http %d): %s\n", verb, status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    printf("%s\n", str_or(answer, "message", done_text));
    json_decref(answer);
    return 0;
}

/* A planned switchover, asked of the leader once (never retried: a second request while the
 * first runs would only be refused). scheduled: NULL or "now" for at once. */
static int cmd_switchover(struct ctl *c, const char *leader, const char *candidate,
                          const char *scheduled)
{
    json_t *o = json_object();
    if (leader != NULL) {
        json_object_set_new(o, "leader", json_string(leader));
    }
    if (candidate != NULL) {
        json_object_set_new(o, "candidate", json_string(candidate));
    }
    if (scheduled != NULL && strcmp(scheduled, "now") != 0) {
        int64_t at_ms;
        char when[48], errmsg[RPG_ERRMSG_SIZE];
        if (schedule_parse_time(scheduled, true, &at_ms, errmsg) != 0) {
            fprintf(stderr, "raftpg ctl switchover: --scheduled: %s\n", errmsg);
            json_decref(o);
            return 2;
        }
        schedule_format_time(at_ms, when, sizeof when);
        json_object_set_new(o, "scheduled_at", json_string(when));
        char *body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        int rc = body != NULL ? schedule_switchover(c, body) : 1;
        free(body);
        return rc;
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    /* Each step has its own bound on the agent (switchover.h), and on_switchover its
     * callback_timeout (30 s by default): their sum, and some. */
    int rc = post_to_leader(c, "switchover", "/switchover", body, 90000, "switched over");
    free(body);
    return rc;
}

/* patronictl failover: POST /failover {"candidate"} through the leader. */
static int cmd_failover(struct ctl *c, const char *candidate)
{
    json_t *o = json_pack("{s:s}", "candidate", candidate);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = post_to_leader(c, "failover", "/failover", body, 60000, "failed over");
    free(body);
    return rc;
}

static bool reload_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    (void)arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (post_member(c, api, "/reload", "{}", c->timeout_ms, &status, &answer, errmsg) != 0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (status == 200) {
        const char *applied = str_or(answer, "applied", "");
        const char *restart = str_or(answer, "restart_needed", "");
        printf("%s: reloaded; applied: %s; needs a restart of the agent: %s\n", name,
               applied[0] != '\0' ? applied : "nothing", restart[0] != '\0' ? restart : "nothing");
    } else {
        printf("%s: failed (http %d): %s\n", name, status, str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl reload: POST /reload to each member named (every member without names). */
static int cmd_reload(struct ctl *c, char **names, int n)
{
    return each_member(c, "reload", names, n, false, reload_member, NULL);
}

/* patronictl history: GET /history from the first member that answers, as a table. */
static int cmd_history(struct ctl *c, bool json)
{
    char errmsg[RPG_ERRMSG_SIZE] = "no API endpoint";
    for (unsigned i = 0; i < c->n_endpoints; i++) {
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        if (http_request_sync(c->endpoints[i], "GET", "/history", NULL, NULL, c->timeout_ms,
                              &status, &body, &len, errmsg) != 0) {
            continue;
        }
        json_error_t jerr;
        json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        free(body);
        if (!json_is_array(o)) {
            snprintf(errmsg, sizeof errmsg, "%s: unexpected answer to GET /history (http %d)",
                     c->endpoints[i], status);
            json_decref(o);
            continue;
        }
        if (json) {
            char *out = json_dumps(o, JSON_COMPACT);
            printf("%s\n", out != NULL ? out : "[]");
            free(out);
            json_decref(o);
            return 0;
        }
        printf("%-4s %-19s %-12s %-29s %s\n", "TL", "LSN", "Reason", "Timestamp", "New Leader");
        size_t k;
        json_t *e;
        json_array_foreach(o, k, e) {
            uint64_t lsn = (uint64_t)json_integer_value(json_array_get(e, 1));
            char lsn_text[40];
            snprintf(lsn_text, sizeof lsn_text, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
            printf("%-4lld %-19s %-12s %-29s %s\n",
                   (long long)json_integer_value(json_array_get(e, 0)), lsn_text,
                   json_string_value(json_array_get(e, 2)) != NULL
                       ? json_string_value(json_array_get(e, 2))
                       : "?",
                   json_string_value(json_array_get(e, 3)) != NULL
                       ? json_string_value(json_array_get(e, 3))
                       : "?",
                   json_string_value(json_array_get(e, 4)) != NULL
                       ? json_string_value(json_array_get(e, 4))
                       : "?");
        }
        json_decref(o);
        return 0;
    }
    fprintf(stderr, "raftpg ctl history: no member answered: %s\n", errmsg);
    return 1;
}

/* Maintenance mode (Patroni's pause/resume): PATCH /config {"pause": ...} through the leader. */
static int cmd_pause(struct ctl *c, bool on, bool wait)
{
    const char *verb = on ? "pause" : "resume";
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = send_to_leader(c, "PATCH", "/config", on ? "{\"pause\":true}" : "{\"pause\":false}",
                            &status, &answer, errmsg);
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb, errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl %s: refused (http %d): %s\n", verb, status,
                str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    if (wait) {
        double deadline = now_s() + (double)c->timeout_ms * 30 / 1000.0;
        char lagging[RPG_ERRMSG_SIZE] = "";
        while (!all_paused(c, on, lagging, sizeof lagging)) {
            if (now_s() >= deadline) {
                fprintf(stderr, "raftpg ctl %s: recorded, but %s\n", verb, lagging);
                return 1;
            }
            sleep_ms(200);
        }
    }
    printf(on ? "Maintenance mode: on (no failover; PostgreSQL is left to the operator)\n"
              : "Maintenance mode: off\n");
    return 0;
}

int ctl_main(int argc, char **argv)
{
    struct ctl c;
    memset(&c, 0, sizeof c);
    c.timeout_ms = 2000;
    const char *config = NULL;
    const char *secret_file = getenv("RAFTPG_SECRET_FILE");
    const char *username = NULL, *password_file = NULL;
    char cacert[PATH_MAX] = "", certfile[PATH_MAX] = "", keyfile[PATH_MAX] = "";
    char crlfile[PATH_MAX] = "", keypass[256] = "";
    /* Which keys the CA and the lists came from, for messages. */
    const char *cacert_key = "--cacert", *crl_key = "--crlfile";
    bool insecure = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(ctl_usage, stdout);
            return 0;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--api") == 0 && i + 1 < argc) {
            add_endpoint(&c, argv[++i]);
        } else if (strcmp(a, "--secret-file") == 0 && i + 1 < argc) {
            secret_file = argv[++i];
        } else if (strcmp(a, "--username") == 0 && i + 1 < argc) {
            username = argv[++i];
        } else if (strcmp(a, "--password-file") == 0 && i + 1 < argc) {
            password_file = argv[++i];
        } else if (strcmp(a, "--cacert") == 0 && i + 1 < argc) {
            snprintf(cacert, sizeof cacert, "%s", argv[++i]);
        } else if (strcmp(a, "--insecure") == 0) {
            insecure = true;
        } else if (strcmp(a, "--crlfile") == 0 && i + 1 < argc) {
            snprintf(crlfile, sizeof crlfile, "%s", argv[++i]);
        } else if (strcmp(a, "--cert") == 0 && i + 1 < argc) {
            snprintf(certfile, sizeof certfile, "%s", argv[++i]);
        } else if (strcmp(a, "--key") == 0 && i + 1 < argc) {
            snprintf(keyfile, sizeof keyfile, "%s", argv[++i]);
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || v < 10 || v > 600000) {
                fprintf(stderr,
                        "raftpg ctl: --timeout: expected milliseconds 10..600000, "
                        "got \"%s\"\n",
                        argv[i]);
                return 2;
            }
            c.timeout_ms = (unsigned)v;
        } else if (a[0] == '-') {
            fprintf(stderr, "raftpg ctl: unknown or incomplete option \"%s\"\n%s", a, ctl_usage);
            return 2;
        } else {
            break;
        }
    }
    /* Like patronictl: without any address, this node's own configuration. */
    const char *api_env = getenv("RAFTPG_API");
    if (config == NULL && c.n_endpoints == 0 && (api_env == NULL || api_env[0] == '\0')) {
        const char *env = getenv("RAFTPG_CONFIG");
        if (env != NULL && env[0] != '\0') {
            config = env;
        } else if (access(CTL_DEFAULT_CONFIG, R_OK) == 0) {
            config = CTL_DEFAULT_CONFIG;
        }
    }
    if (config != NULL) {
        struct conf conf;
        char errmsg[RPG_ERRMSG_SIZE];
        if (conf_load(config, &conf, errmsg) != 0) {
            fprintf(stderr, "raftpg ctl: %s\n", errmsg);
            conf_free(&conf);
            return 2;
        }
        add_endpoint(&c, conf.restapi.connect_address);
        for (unsigned k = 0; k < conf.raft.n_members; k++) {
            add_endpoint(&c, conf.raft.members[k].api);
        }
        if (conf.restapi.certfile[0] != '\0') {
            c.https = true;
        }
        /* Patroni's ctl section first, then what the API itself is configured with. */
        if (cacert[0] == '\0') {
            snprintf(cacert, sizeof cacert, "%s",
                     conf.ctl.cacert[0] != '\0' ? conf.ctl.cacert : conf.restapi.cafile);
            cacert_key = conf.ctl.cacert[0] != '\0' ? "ctl.cacert" : "restapi.cafile";
            /* The lists belong to that CA: another --cacert takes none of them. */
            if (crlfile[0] == '\0' && conf_client_crlfile(&conf)[0] != '\0') {
                snprintf(crlfile, sizeof crlfile, "%s", conf_client_crlfile(&conf));
                crl_key = conf.ctl.crlfile[0] != '\0' ? "ctl.crlfile" : "restapi.crlfile";
            }
        }
        insecure = insecure || conf.ctl.insecure;
        if (certfile[0] == '\0' && conf.ctl.certfile[0] != '\0') {
            snprintf(certfile, sizeof certfile, "%s", conf.ctl.certfile);
            if (keyfile[0] == '\0') {
                snprintf(keyfile, sizeof keyfile, "%s", conf.ctl.keyfile);
                snprintf(keypass, sizeof keypass, "%s", conf.ctl.keyfile_password);
            }
        }
        bool ctl_auth = conf.ctl.auth_username[0] != '\0';
        if (username == NULL && (ctl_auth || conf.restapi.auth_username[0] != '\0') &&
            !set_basic(&c, ctl_auth ? conf.ctl.auth_username : conf.restapi.auth_username,
                       ctl_auth ? conf.ctl.auth_password : conf.restapi.auth_password)) {
            fprintf(stderr, "raftpg ctl: %s.authentication of %s is too long\n",
                    ctl_auth ? "ctl" : "restapi", config);
            conf_free(&conf);
            return 2;
        }
        if (secret_file == NULL && conf.raft.secret_file[0] != '\0') {
            if (conf_secret_read(&conf, false, true, c.key, errmsg) != 0) {
                fprintf(stderr, "raftpg ctl: %s\n", errmsg);
                conf_free(&conf);
                return 2;
            }
            c.has_key = true;
        }
        conf_free(&conf);
    }
    if (secret_file != NULL && secret_file[0] != '\0') {
        struct conf *sc = calloc(1, sizeof *sc);
        char errmsg[RPG_ERRMSG_SIZE];
        if (sc == NULL) {
            return 2;
        }
        snprintf(sc->raft.secret_file, sizeof sc->raft.secret_file, "%s", secret_file);
        int rv = conf_secret_read(sc, false, true, c.key, errmsg);
        free(sc);
        if (rv != 0) {
            fprintf(stderr, "raftpg ctl: --secret-file: %s\n", errmsg);
            return 2;
        }
        c.has_key = true;
    }
    /* Credentials never come from the command line's arguments (ps shows them). */
    if (username == NULL) {
        username = getenv("RAFTPG_API_USERNAME");
    }
    if (username != NULL && username[0] != '\0') {
        char password[130] = "";
        if (password_file != NULL) {
            FILE *f = fopen(password_file, "r");
            if (f == NULL || fgets(password, sizeof password, f) == NULL) {
                fprintf(stderr, "raftpg ctl: --password-file %s: cannot read it\n", password_file);
                if (f != NULL) {
                    fclose(f);
                }
                return 2;
            }
            fclose(f);
            password[strcspn(password, "\r\n")] = '\0';
        } else if (getenv("RAFTPG_API_PASSWORD") != NULL) {
            snprintf(password, sizeof password, "%s", getenv("RAFTPG_API_PASSWORD"));
        } else {
            fprintf(stderr, "raftpg ctl: --username needs --password-file FILE or "
                            "RAFTPG_API_PASSWORD\n");
            return 2;
        }
        bool ok = set_basic(&c, username, password);
        sodium_memzero(password, sizeof password);
        if (!ok) {
            fprintf(stderr, "raftpg ctl: --username: user name or password too long\n");
            return 2;
        }
    }
    if (c.has_key && sodium_init() < 0) {
        fprintf(stderr, "raftpg ctl: cannot initialise libsodium\n");
        return 2;
    }
    add_endpoint(&c, getenv("RAFTPG_API"));
    char tls_err[RPG_ERRMSG_SIZE];
    if (http_client_set_tls(c.https, cacert, insecure, tls_err) != 0) {
        fprintf(stderr, "raftpg ctl: --cacert: %s\n", tls_err);
        return 2;
    }
    if (keyfile[0] != '\0' && certfile[0] == '\0') {
        fprintf(stderr, "raftpg ctl: --key needs --cert\n");
        return 2;
    }
    /* Lists from the configuration mean nothing once --insecure or ctl.insecure checks no
     * certificate; a --crlfile given with them is a mistake worth saying. */
    bool crl_given = strcmp(crl_key, "--crlfile") == 0;
    if (crlfile[0] != '\0' && insecure && !crl_given) {
        crlfile[0] = '\0';
    }
    if (crlfile[0] != '\0' && (cacert[0] == '\0' || insecure)) {
        fprintf(stderr,
                "raftpg ctl: --crlfile needs --cacert (or ctl.cacert, restapi.cafile) and no "
                "--insecure: the lists are checked against that CA\n");
        return 2;
    }
    if (http_client_set_crl(crlfile, crl_key, cacert, cacert_key, tls_err) != 0) {
        fprintf(stderr, "raftpg ctl: %s\n", tls_err);
        return 2;
    }
    int cert_rv = http_client_set_cert(certfile, keyfile, keypass, tls_err);
    sodium_memzero(keypass, sizeof keypass);
    if (cert_rv != 0) {
        fprintf(stderr, "raftpg ctl: --cert: %s\n", tls_err);
        return 2;
    }
    if (i >= argc) {
        fprintf(stderr, "raftpg ctl: a command is required\n%s", ctl_usage);
        return 2;
    }
    if (c.n_endpoints == 0) {
        fprintf(stderr, "raftpg ctl: no API address: give --api HOST:PORT, -c FILE, RAFTPG_API, "
                        "RAFTPG_CONFIG, or install " CTL_DEFAULT_CONFIG "\n");
        return 2;
    }
    const char *cmd = argv[i++];
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "topology") == 0) {
        enum list_format format = LIST_PRETTY;
        double watch = 0;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--json") == 0) {
                format = LIST_JSON;
            } else if ((strcmp(argv[i], "--format") == 0 || strcmp(argv[i], "-f") == 0) &&
                       i + 1 < argc) {
                const char *f = argv[++i];
                if (strcmp(f, "pretty") == 0) {
                    format = LIST_PRETTY;
                } else if (strcmp(f, "json") == 0) {
                    format = LIST_JSON;
                } else if (strcmp(f, "tsv") == 0) {
                    format = LIST_TSV;
                } else {
                    fprintf(stderr,
                            "raftpg ctl %s: --format: expected pretty, json or tsv, got "
                            "\"%s\"\n",
                            cmd, f);
                    return 2;
                }
            } else if ((strcmp(argv[i], "--watch") == 0 || strcmp(argv[i], "-w") == 0) &&
                       i + 1 < argc) {
                char *end = NULL;
                watch = strtod(argv[++i], &end);
                if (end == argv[i] || *end != '\0' || watch < 0.1 || watch > 3600) {
                    fprintf(stderr,
                            "raftpg ctl %s: --watch: expected seconds 0.1..3600, got "
                            "\"%s\"\n",
                            cmd, argv[i]);
                    return 2;
                }
            } else if (strcmp(argv[i], "-W") == 0) {
                watch = 2;
            } else {
                fprintf(stderr, "raftpg ctl %s: unexpected argument \"%s\"\n", cmd, argv[i]);
                return 2;
            }
        }
        bool topo = strcmp(cmd, "topology") == 0;
        for (;;) {
            int rv = topo ? cmd_topology(&c) : cmd_list(&c, format);
            if (watch == 0) {
                return rv;
            }
            fflush(stdout);
            sleep_ms((unsigned)(watch * 1000));
            printf("\n");
        }
    }
    if (strcmp(cmd, "version") == 0) {
        if (i < argc) {
            fprintf(stderr, "raftpg ctl version: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
        return cmd_version(&c);
    }
    if (strcmp(cmd, "sign") == 0) {
        if (i + 2 > argc || i + 3 < argc) {
            fprintf(stderr, "raftpg ctl sign: expected METHOD PATH [BODY]\n");
            return 2;
        }
        if (!c.has_key) {
            fprintf(stderr, "raftpg ctl sign: no secret: give -c FILE or --secret-file FILE\n");
            return 2;
        }
        char errmsg[RPG_ERRMSG_SIZE], auth[PROOF_AUTH_MAX];
        json_t *cluster = fetch_cluster(&c, errmsg);
        const char *scope = json_string_value(json_object_get(cluster, "scope"));
        if (scope == NULL) {
            fprintf(stderr, "raftpg ctl sign: %s\n", cluster == NULL ? errmsg : "no scope");
            json_decref(cluster);
            return 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        proof_sign_request(c.key, scope, argv[i], argv[i + 1], i + 2 < argc ? argv[i + 2] : "",
                           (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, auth, sizeof auth);
        json_decref(cluster);
        printf("%s\n", auth);
        return 0;
    }
    if (strcmp(cmd, "show-config") == 0) {
        if (i < argc) {
            fprintf(stderr, "raftpg ctl show-config: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
        return cmd_show_config(&c);
    }
    if (strcmp(cmd, "edit-config") == 0) {
        char *pairs[48];
        bool pg[48];
        struct edit_opts e = {.pairs = pairs, .pg = pg};
        for (; i < argc; i++) {
            bool set = strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0;
            bool param = strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--pg") == 0;
            if ((set || param) && i + 1 < argc && e.n < 48) {
                pg[e.n] = param;
                pairs[e.n++] = argv[++i];
            } else if (strcmp(argv[i], "--apply") == 0 && i + 1 < argc && e.apply == NULL) {
                e.apply = argv[++i];
            } else if (strcmp(argv[i], "--replace") == 0 && i + 1 < argc && e.replace == NULL) {
                e.replace = argv[++i];
            } else if (strcmp(argv[i], "--force") == 0) {
                e.force = true;
            } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
                e.quiet = true;
            } else {
                fprintf(stderr, "raftpg ctl edit-config: unexpected argument \"%s\"\n", argv[i]);
                return 2;
            }
        }
        return cmd_edit_config(&c, &e);
    }
    if (strcmp(cmd, "restart") == 0) {
        char *names[CTL_MAX_ENDPOINTS];
        int n = 0;
        const char *role = NULL, *scheduled = NULL, *version = NULL, *timeout = NULL;
        bool pending = false;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
                role = argv[++i];
                if (strcmp(role, "master") == 0) {
                    role = "primary";
                }
                if (strcmp(role, "primary") != 0 && strcmp(role, "replica") != 0 &&
                    strcmp(role, "any") != 0) {
                    fprintf(stderr,
                            "raftpg ctl restart: --role: expected primary, replica or "
                            "any, got \"%s\"\n",
                            role);
                    return 2;
                }
                if (strcmp(role, "any") == 0) {
                    role = NULL;
                }
            } else if (strcmp(argv[i], "--pending") == 0) {
                pending = true;
            } else if (strcmp(argv[i], "--force") == 0) {
                /* patronictl's "do not ask": raftpg ctl never asks. */
            } else if (strcmp(argv[i], "--scheduled") == 0 && i + 1 < argc) {
                scheduled = argv[++i];
            } else if (strcmp(argv[i], "--pg-version") == 0 && i + 1 < argc) {
                version = argv[++i];
            } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
                timeout = argv[++i];
            } else if (argv[i][0] != '-' && n < CTL_MAX_ENDPOINTS) {
                names[n++] = argv[i];
            } else {
                fprintf(stderr, "raftpg ctl restart: unexpected argument \"%s\"\n", argv[i]);
                return 2;
            }
        }
        return cmd_restart(&c, names, n, role, pending, version, scheduled, timeout);
    }
    if (strcmp(cmd, "reinit") == 0) {
        const char *name = NULL;
        bool wait = true;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--no-wait") == 0) {
                wait = false;
            } else if (strcmp(argv[i], "--force") == 0) {
                /* patronictl's "do not ask": raftpg ctl never asks. */
            } else if (argv[i][0] != '-' && name == NULL) {
                name = argv[i];
            } else {
                fprintf(stderr, "raftpg ctl reinit: unexpected argument \"%s\"\n", argv[i]);
                return 2;
            }
        }
        if (name == NULL) {
            fprintf(stderr, "raftpg ctl reinit: MEMBER is required\n");
            return 2;
        }
        return cmd_reinit(&c, name, wait);
    }
    if (strcmp(cmd, "switchover") == 0) {
        const char *leader = NULL, *candidate = NULL, *scheduled = NULL;
        for (; i < argc; i++) {
            if ((strcmp(argv[i], "--leader") == 0 || strcmp(argv[i], "--primary") == 0) &&
                i + 1 < argc) {
                leader = argv[++i];
            } else if (strcmp(argv[i], "--candidate") == 0 && i + 1 < argc) {
                candidate = argv[++i];
            } else if (strcmp(argv[i], "--force") == 0) {
                /* patronictl's "do not ask": raftpg ctl never asks. */
            } else if (strcmp(argv[i], "--scheduled") == 0 && i + 1 < argc) {
                scheduled = argv[++i];
            } else {
                fprintf(stderr, "raftpg ctl switchover: unexpected argument \"%s\"\n", argv[i]);
                return 2;
            }
        }
        return cmd_switchover(&c, leader, candidate, scheduled);
    }
    if (strcmp(cmd, "flush") == 0) {
        if (i < argc && strcmp(argv[i], "restart") == 0) {
            char *names[CTL_MAX_ENDPOINTS];
            int n = 0;
            for (i++; i < argc; i++) {
                if (strcmp(argv[i], "--force") == 0) {
                    /* patronictl's "do not ask": raftpg ctl never asks. */
                } else if (argv[i][0] != '-' && n < CTL_MAX_ENDPOINTS) {
                    names[n++] = argv[i];
                } else {
                    fprintf(stderr, "raftpg ctl flush restart: unexpected argument \"%s\"\n",
                            argv[i]);
                    return 2;
                }
            }
            return cmd_flush_restart(&c, names, n);
        }
        if (i + 1 != argc || strcmp(argv[i], "switchover") != 0) {
            fprintf(stderr, "raftpg ctl flush: expected \"restart [MEMBER...]\" or "
                            "\"switchover\"\n");
            return 2;
        }
        return cmd_flush_switchover(&c);
    }
    if (strcmp(cmd, "failover") == 0) {
        const char *candidate = NULL;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--candidate") == 0 && i + 1 < argc) {
                candidate = argv[++i];
            } else if (strcmp(argv[i], "--force") == 0) {
                /* patronictl's "do not ask": raftpg ctl never asks. */
            } else {
                fprintf(stderr, "raftpg ctl failover: unexpected argument \"%s\"\n", argv[i]);
                return 2;
            }
        }
        if (candidate == NULL) {
            fprintf(stderr, "raftpg ctl failover: --candidate NAME is required\n");
            return 2;
        }
        return cmd_failover(&c, candidate);
    }
    if (strcmp(cmd, "reload") == 0) {
        for (int k = i; k < argc; k++) {
            if (argv[k][0] == '-') {
                fprintf(stderr, "raftpg ctl reload: unexpected option \"%s\"\n", argv[k]);
                return 2;
            }
        }
        return cmd_reload(&c, argv + i, argc - i);
    }
    if (strcmp(cmd, "history") == 0) {
        bool json = false;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--format") == 0 && i + 1 < argc &&
                (strcmp(argv[i + 1], "json") == 0 || strcmp(argv[i + 1], "pretty") == 0)) {
                json = strcmp(argv[++i], "json") == 0;
            } else if (strcmp(argv[i], "--json") == 0) {
                json = true;
            } else {
                fprintf(stderr,
                        "raftpg ctl history: unexpected argument \"%s\" (--format "
                        "pretty|json)\n",
                        argv[i]);
                return 2;
            }
        }
        return cmd_history(&c, json);
    }
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
        bool wait = false;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--wait") == 0) {
                wait = true;
            } else {
                fprintf(stderr, "raftpg ctl %s: unexpected argument \"%s\"\n", cmd, argv[i]);
                return 2;
            }
        }
        return cmd_pause(&c, strcmp(cmd, "pause") == 0, wait);
    }
    if (strcmp(cmd, "member") == 0) {
        if (i >= argc) {
            fprintf(stderr, "raftpg ctl member: expected add or remove\n");
            return 2;
        }
        const char *sub = argv[i++];
        const char *name = NULL, *raft = NULL, *api = NULL;
        bool wait = true;
        for (; i < argc; i++) {
            if (strcmp(argv[i], "--raft") == 0 && i + 1 < argc) {
                raft = argv[++i];
            } else if (strcmp(argv[i], "--api") == 0 && i + 1 < argc) {
                api = argv[++i];
            } else if (strcmp(argv[i], "--no-wait") == 0) {
                wait = false;
            } else if (argv[i][0] != '-' && name == NULL) {
                name = argv[i];
            } else {
                fprintf(stderr, "raftpg ctl member %s: unexpected argument \"%s\"\n", sub, argv[i]);
                return 2;
            }
        }
        if (name == NULL) {
            fprintf(stderr, "raftpg ctl member %s: NAME is required\n", sub);
            return 2;
        }
        if (strcmp(sub, "add") == 0) {
            return cmd_member_add(&c, name, raft, api, wait);
        }
        if (strcmp(sub, "remove") == 0) {
            if (raft != NULL || api != NULL) {
                fprintf(stderr, "raftpg ctl member remove: --raft/--api do not apply\n");
                return 2;
            }
            return cmd_member_remove(&c, name, wait);
        }
        fprintf(stderr, "raftpg ctl member: expected add or remove, got \"%s\"\n", sub);
        return 2;
    }
    fprintf(stderr, "raftpg ctl: unknown command \"%s\"\n%s", cmd, ctl_usage);
    return 2;
}
