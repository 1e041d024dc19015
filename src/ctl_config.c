/* ctl edit-config: the cluster-wide configuration changed by -s/-p pairs at once, or as a
 * document (show-config's text) through $EDITOR, --apply or --replace, with its diff and a
 * question before the change. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_int.h"
#include "raftpg/cfgdoc.h"

/* GET /config from the leader: what a change made there next replaces (a follower may not have
 * applied the last change yet). NULL with errmsg. */
static json_t *leader_config(struct ctl *c, char *errmsg)
{
    int status = 0;
    json_t *answer = NULL;
    if (ctl_send_to_leader(c, "GET", "/config", NULL, &status, &answer, errmsg) != 0) {
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
    int rv = body != NULL
                 ? ctl_send_to_leader(c, "PATCH", "/config", body, &status, &answer, errmsg)
                 : RPG_ENOMEM;
    free(body);
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl edit-config: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
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
    int rv = body != NULL ? ctl_send_to_leader(c, put ? "PUT" : "PATCH", "/config", body, &status,
                                               &answer, errmsg)
                          : rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl edit-config: %s\n", errmsg);
        goto out;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl edit-config: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
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

int ctl_run_edit_config(struct ctl *c, int argc, char **argv)
{
    char *pairs[48];
    bool pg[48];
    struct edit_opts e = {.pairs = pairs, .pg = pg};
    for (int i = 0; i < argc; i++) {
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
    return cmd_edit_config(c, &e);
}
