/* Node configuration: loading a file or a string into struct conf (conf_parse.c walks it),
 * freeing it, and the small helpers other modules ask of a loaded configuration. */
#include "raftpg/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "conf_int.h"

/* A configuration file is a few kilobytes; the cap keeps a wrong path (a disk image, a log) from
 * being read into memory. */
#define CONF_FILE_MAX (1024 * 1024)

static void conf_init(struct conf *c, const char *path)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    conf_apply_defaults(conf_root_keys, c);
}

static int load(const char *file, const char *text, size_t len, struct conf *c, char *errmsg)
{
    struct parser *p = calloc(1, sizeof *p);
    int rv;

    if (p == NULL) {
        rv = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", file);
        goto out;
    }
    p->file = file;
    p->text = text;
    p->len = len;
    p->errmsg = errmsg;
    p->c = c;
    rv = conf_run_pass(p, conf_check_syntax);
    if (rv == 0) {
        rv = conf_run_pass(p, conf_parse_document);
    }
    free(p);
out:
    if (rv != 0) {
        conf_free(c);
    }
    return rv;
}

int conf_load_string(const char *name, const char *text, struct conf *c, char *errmsg)
{
    if (name == NULL) {
        name = "<string>";
    }
    conf_init(c, name);
    if (text == NULL) {
        return rpg_err(errmsg, RPG_EINVAL, "%s: no configuration text", name);
    }
    return load(name, text, strlen(text), c, errmsg);
}

int conf_load(const char *path, struct conf *c, char *errmsg)
{
    char *text = NULL;
    size_t len = 0;
    ssize_t got;
    int fd;
    int rv;

    memset(c, 0, sizeof *c);
    if (path == NULL) {
        return rpg_err(errmsg, RPG_EINVAL, "conf_load: no path");
    }
    if (strlen(path) >= sizeof c->path) {
        return rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: path too long", path);
    }
    conf_init(c, path);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto err_errno;
    }
    /* One byte past the cap tells a file of exactly CONF_FILE_MAX bytes from a larger one. */
    text = malloc(CONF_FILE_MAX + 1);
    if (text == NULL) {
        close(fd);
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", path);
    }
    while (len <= CONF_FILE_MAX) {
        got = read(fd, text + len, CONF_FILE_MAX + 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            goto err_errno;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    if (len > CONF_FILE_MAX) {
        free(text);
        memset(c, 0, sizeof *c);
        return rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: larger than %d bytes", path,
                       CONF_FILE_MAX);
    }
    rv = load(path, text, len, c, errmsg);
    free(text);
    return rv;

err_errno:
    rv = rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    free(text);
    memset(c, 0, sizeof *c);
    return rv;
}

void conf_free(struct conf *c)
{
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        free(c->postgresql.parameters[i].key);
        free(c->postgresql.parameters[i].value);
    }
    free(c->postgresql.parameters);
    for (unsigned i = 0; i < c->postgresql.n_pg_hba; i++) {
        free(c->postgresql.pg_hba[i]);
    }
    free(c->postgresql.pg_hba);
    for (unsigned i = 0; i < c->dcs.n_parameters; i++) {
        free(c->dcs.parameters[i].key);
        free(c->dcs.parameters[i].value);
    }
    free(c->dcs.parameters);
    for (unsigned i = 0; i < c->dcs.n_pg_hba; i++) {
        free(c->dcs.pg_hba[i]);
    }
    free(c->dcs.pg_hba);
    for (unsigned i = 0; i < c->tags.n_user; i++) {
        free(c->tags.user[i].key);
        free(c->tags.user[i].value);
    }
    free(c->tags.user);
    for (unsigned m = 0; m < c->bootstrap.n_methods; m++) {
        struct conf_boot_method *bm = &c->bootstrap.methods[m];
        for (unsigned i = 0; i < bm->n_args; i++) {
            free(bm->args[i].key);
            free(bm->args[i].value);
        }
        free(bm->args);
    }
    struct conf_kv *lists[] = {c->restapi_headers.http, c->restapi_headers.https};
    unsigned counts[] = {c->restapi_headers.n_http, c->restapi_headers.n_https};
    for (int l = 0; l < 2; l++) {
        for (unsigned i = 0; i < counts[l]; i++) {
            free(lists[l][i].key);
            free(lists[l][i].value);
        }
        free(lists[l]);
    }
    sodium_memzero(c->restapi.auth_password, sizeof c->restapi.auth_password);
    sodium_memzero(c->ctl.auth_password, sizeof c->ctl.auth_password);
    sodium_memzero(c->restapi.keyfile_password, sizeof c->restapi.keyfile_password);
    sodium_memzero(c->ctl.keyfile_password, sizeof c->ctl.keyfile_password);
    memset(c, 0, sizeof *c);
}

const char *conf_server_header(enum conf_server_tokens tokens)
{
    switch (tokens) {
    case CONF_SERVER_TOKENS_PRODUCT_ONLY: return "raftpg";
    case CONF_SERVER_TOKENS_MINIMAL: return "raftpg/" RAFTPG_VERSION;
    case CONF_SERVER_TOKENS_ORIGINAL: break;
    }
    return NULL;
}

const char *conf_client_crlfile(const struct conf *c)
{
    if (c->ctl.crlfile[0] != '\0') {
        return c->ctl.crlfile;
    }
    return c->ctl.cacert[0] == '\0' ? c->restapi.crlfile : "";
}

const struct conf_member *conf_self(const struct conf *c)
{
    for (unsigned i = 0; i < c->raft.n_members && i < CONF_MEMBERS_MAX; i++) {
        if (strcmp(c->raft.members[i].name, c->name) == 0) {
            return &c->raft.members[i];
        }
    }
    return NULL;
}
