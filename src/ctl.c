/* raftpg ctl: the options (where the API is, TLS, credentials, the secret that signs changes),
 * the table of subcommands, and the usage and dispatch made from it. The subcommands live in
 * ctl_show.c, ctl_config.c, ctl_member.c and ctl_action.c; their client side in ctl_http.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ctl_int.h"
#include "raftpg/conf.h"
#include "raftpg/ctl.h"
#include "raftpg/http.h"

/* Where ctl finds this node's configuration when given no address (patronictl's habit). */
#define CTL_DEFAULT_CONFIG "/etc/raftpg/raftpg.yaml"

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

/* An API address to ask, once: a URL's scheme and path are dropped (https:// turns TLS on). */
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

/* One subcommand: the words that name it, its arguments and its description as the usage
 * prints them, and the function that runs it. */
struct ctl_command {
    const char *name; /* the first word */
    const char *sub;  /* the second word ("member add"), or NULL */
    const char *args; /* after the words, or NULL; a '\n' continues under the first argument */
    const char *help; /* the description's lines, '\n' between them; NULL: not listed (the
                       * words alone, followed by none of the listed second words) */
    ctl_run_fn run;
};

/* In the usage's order. A row with a second word is found before its first word's unlisted row
 * (member, flush), which answers for a second word that names nothing. */
static const struct ctl_command ctl_commands[] = {
    {"list", NULL, "[--format pretty|json|yaml|tsv] [--json] [-W | --watch SECONDS]",
     "members, roles and raft state", ctl_run_list},
    {"topology", NULL, "[--format pretty|json|yaml|tsv] [--json] [-W | --watch SECONDS]",
     "the primary and who streams from it", ctl_run_topology},
    {"version", NULL, NULL, "this program's and each member's version", ctl_run_version},
    {"member", "add", "NAME --raft HOST:PORT --api HOST:PORT [--no-wait]",
     "add a member (spare, then voter)", ctl_run_member_add},
    {"member", "remove", "NAME [--no-wait]", "remove a member", ctl_run_member_remove},
    {"member", NULL, NULL, NULL, ctl_run_member_other},
    {"show-config", NULL, NULL, "the cluster-wide settings", ctl_run_show_config},
    {"sign", NULL, "METHOD PATH [BODY]",
     "print an Authorization value that\n"
     "signs this request (for curl)",
     ctl_run_sign},
    {"edit-config", NULL,
     "[-s KEY=VALUE ...] [-p NAME=VALUE ...] [--apply FILE] [--replace FILE]\n"
     "[--force] [-q | --quiet]",
     "change them: -s synchronous_mode,\n"
     "synchronous_node_count,\n"
     "synchronous_commit,\n"
     "maximum_lag_on_failover (VALUE null\n"
     "removes it); -p (--pg) a\n"
     "PostgreSQL parameter (VALUE null\n"
     "removes it); -s and -p alone apply at\n"
     "once; else in $EDITOR, or --apply FILE\n"
     "(merged) or --replace FILE (all of it;\n"
     "- is stdin): the diff, then asks\n"
     "(--force: does not; -q: no diff)",
     ctl_run_edit_config},
    {"switchover", NULL, "[--leader N] [--candidate N] [--scheduled TIME] [--force]",
     "move the primary to a caught-up standby\n"
     "(the best one without --candidate); at\n"
     "TIME (ISO 8601, local time without a\n"
     "zone; now: at once) when scheduled",
     ctl_run_switchover},
    {"flush", "switchover", NULL, "cancel the scheduled switchover", ctl_run_flush_switchover},
    {"flush", "restart", "[MEMBER...]",
     "cancel the members' scheduled restarts\n"
     "(all without MEMBER)",
     ctl_run_flush_restart},
    {"flush", NULL, NULL, NULL, ctl_run_flush_other},
    {"failover", NULL, "--candidate N [--force]",
     "promote N: a switchover to it while the\n"
     "primary is healthy; without one, only if\n"
     "N holds every acknowledged commit",
     ctl_run_failover},
    {"history", NULL, "[--format pretty|json|yaml|tsv] [--json]",
     "the cluster's promotions (timelines)", ctl_run_history},
    {"reload", NULL, "[MEMBER...]",
     "re-read the members' configuration files\n"
     "(all without MEMBER); says what needs a\n"
     "restart of the agent",
     ctl_run_reload},
    {"reinit", NULL, "MEMBER [--no-wait] [--force]", "clone a standby again from the primary",
     ctl_run_reinit},
    {"restart", NULL,
     "[MEMBER...] [--role primary|replica|any] [--pending] [--pg-version V]\n"
     "[--scheduled TIME] [--timeout SECONDS] [--force]",
     "restart postgresql, standbys first; at\n"
     "TIME (ISO 8601, local time without a\n"
     "zone; now: at once) when scheduled; a\n"
     "primary not started within SECONDS is\n"
     "failed over",
     ctl_run_restart},
    {"pause", NULL, "[--wait]",
     "maintenance mode: no failover, no\n"
     "start, stop or promotion (--wait: until\n"
     "every member has applied it)",
     ctl_run_pause},
    {"resume", NULL, "[--wait]", "leave maintenance mode", ctl_run_resume},
};

/* The column of the commands' descriptions in the usage. */
#define CTL_HELP_COLUMN 50

static const char *ctl_usage_options =
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

/* One command's entry: its words and arguments, then its description at CTL_HELP_COLUMN, on
 * the same line when the arguments fit on one line before it. */
static void print_command(FILE *f, const struct ctl_command *k)
{
    const char *args = k->args != NULL ? k->args : "";
    size_t first = strcspn(args, "\n");
    int words = (int)strlen(k->name) + (k->sub != NULL ? 1 + (int)strlen(k->sub) : 0);
    int col = fprintf(f, "  %s%s%s%s%.*s", k->name, k->sub != NULL ? " " : "",
                      k->sub != NULL ? k->sub : "", first > 0 ? " " : "", (int)first, args);
    bool own_line = args[first] != '\0' || col >= CTL_HELP_COLUMN;
    for (const char *p = args + first; *p == '\n';) {
        size_t len = strcspn(++p, "\n");
        fprintf(f, "\n%*s%.*s", 2 + words + 1, "", (int)len, p);
        p += len;
    }
    for (const char *p = k->help; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        if (p == k->help && !own_line) {
            fprintf(f, "%*s%.*s", CTL_HELP_COLUMN - col, "", (int)len, p);
        } else {
            fprintf(f, "\n%*s%.*s", CTL_HELP_COLUMN, "", (int)len, p);
        }
        p += len + (p[len] == '\n');
    }
    fputc('\n', f);
}

void ctl_print_usage(FILE *f)
{
    fputs("usage: raftpg ctl [-c FILE | --api HOST:PORT] [--timeout MS] COMMAND\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++) {
        if (ctl_commands[i].help != NULL) {
            print_command(f, &ctl_commands[i]);
        }
    }
    fputs("\n", f);
    fputs(ctl_usage_options, f);
}

/* The row for cmd followed by argv (argc words), with *words set to how many of cmd and argv
 * name it; NULL for an unknown command. */
static const struct ctl_command *find_command(const char *cmd, int argc, char **argv, int *words)
{
    for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++) {
        const struct ctl_command *k = &ctl_commands[i];
        if (strcmp(k->name, cmd) != 0) {
            continue;
        }
        if (k->sub == NULL) {
            *words = 1;
            return k;
        }
        if (argc > 0 && strcmp(argv[0], k->sub) == 0) {
            *words = 2;
            return k;
        }
    }
    return NULL;
}

bool ctl_command_row(unsigned i, struct ctl_command_row *row)
{
    if (i >= sizeof ctl_commands / sizeof ctl_commands[0]) {
        return false;
    }
    const struct ctl_command *k = &ctl_commands[i];
    *row = (struct ctl_command_row){k->name, k->sub, k->args, k->help, k->run != NULL};
    return true;
}

int ctl_command_lookup(const char *cmd, int argc, char **argv)
{
    int words;
    const struct ctl_command *k = find_command(cmd, argc, argv, &words);
    return k != NULL ? (int)(k - ctl_commands) : -1;
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
            ctl_print_usage(stdout);
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
            fprintf(stderr, "raftpg ctl: unknown or incomplete option \"%s\"\n", a);
            ctl_print_usage(stderr);
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
        fprintf(stderr, "raftpg ctl: a command is required\n");
        ctl_print_usage(stderr);
        return 2;
    }
    if (c.n_endpoints == 0) {
        fprintf(stderr, "raftpg ctl: no API address: give --api HOST:PORT, -c FILE, RAFTPG_API, "
                        "RAFTPG_CONFIG, or install " CTL_DEFAULT_CONFIG "\n");
        return 2;
    }
    const char *cmd = argv[i++];
    int words = 0;
    const struct ctl_command *k = find_command(cmd, argc - i, argv + i, &words);
    if (k == NULL) {
        fprintf(stderr, "raftpg ctl: unknown command \"%s\"\n", cmd);
        ctl_print_usage(stderr);
        return 2;
    }
    i += words - 1;
    return k->run(&c, argc - i, argv + i);
}
