/* The configuration walker: a libyaml event parser that walks the key tables into struct conf,
 * keeps the position of every key for the checks run after the whole file is read, and writes
 * errors as file:line:col: key: message. */
#include "raftpg/conf.h"

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <yaml.h>

#include "conf_int.h"

/* postgresql.parameters and postgresql.pg_hba hold at most this many entries, which also bounds
 * the quadratic duplicate-parameter check. */
#define CONF_LIST_MAX 1000

static struct mark mark_of(yaml_mark_t m)
{
    return (struct mark){m.line + 1, m.column + 1};
}

static struct mark ev_mark(const struct parser *p)
{
    return mark_of(p->ev.start_mark);
}

int conf_fail_at(struct parser *p, struct mark m, const char *key, const char *fmt, ...)
{
    char what[RPG_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (key[0] == '\0') {
        return rpg_err(p->errmsg, RPG_ECONFIG, "%s:%lu:%lu: %s", p->file, m.line, m.col, what);
    }
    return rpg_err(p->errmsg, RPG_ECONFIG, "%s:%lu:%lu: %s: %s", p->file, m.line, m.col, key, what);
}

/* Fails at the current event, naming the current key. */
#define fail(p, ...) conf_fail_at((p), ev_mark(p), (p)->path, __VA_ARGS__)

static int fail_nomem(struct parser *p)
{
    return rpg_err(p->errmsg, RPG_ENOMEM, "%s: out of memory", p->file);
}

/* Appends ".key" (or "key" at the top) or "[i]" to the path; returns the length to restore. */
__attribute__((format(printf, 2, 3))) static size_t path_push(struct parser *p, const char *fmt,
                                                              ...)
{
    size_t old = p->path_len;
    size_t room = sizeof p->path - old;
    va_list ap;
    int n;

    if (fmt[0] == '.' && old == 0) {
        fmt++;
    }
    va_start(ap, fmt);
    n = vsnprintf(p->path + old, room, fmt, ap);
    va_end(ap);
    /* A path cut short by an absurdly long key still makes a readable message. */
    p->path_len = n < 0 ? old : (size_t)n < room ? old + (size_t)n : sizeof p->path - 1;
    p->path[p->path_len] = '\0';
    return old;
}

static void path_pop(struct parser *p, size_t len)
{
    p->path_len = len;
    p->path[len] = '\0';
}

static void where_add(struct parser *p, struct mark m)
{
    if (p->n_where == WHERE_MAX || p->path_len >= sizeof p->where[0].path) {
        return;
    }
    memcpy(p->where[p->n_where].path, p->path, p->path_len + 1);
    p->where[p->n_where].mark = m;
    p->n_where++;
}

/* The position of entry i of a bootstrap.dcs list, for conf_finish()'s checks of what it holds;
 * past the number it may hold, the checks name the list. */
static void where_add_dcs_entry(struct parser *p, unsigned i)
{
    if (i < 32 && strncmp(p->path, "bootstrap.dcs.", 14) == 0) {
        where_add(p, ev_mark(p));
    }
}

bool conf_where_find(const struct parser *p, const char *path, struct mark *m)
{
    for (unsigned i = 0; i < p->n_where; i++) {
        if (strcmp(p->where[i].path, path) == 0) {
            if (m != NULL) {
                *m = p->where[i].mark;
            }
            return true;
        }
    }
    return false;
}

/* The position of the first of the paths that was set, or 1:1. */
struct mark conf_where_first(const struct parser *p, const char *a, const char *b)
{
    struct mark m = {1, 1};

    if (!conf_where_find(p, a, &m) && b != NULL) {
        conf_where_find(p, b, &m);
    }
    return m;
}

static const char *kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    default: return "no value";
    }
}

static int syntax_error(struct parser *p)
{
    const char *problem = p->yaml.problem != NULL ? p->yaml.problem : "unknown error";
    struct mark m = mark_of(p->yaml.problem_mark);

    if (p->yaml.error == YAML_MEMORY_ERROR) {
        return fail_nomem(p);
    }
    if (p->yaml.error == YAML_READER_ERROR) {
        /* The reader reports a byte offset only; columns count characters, as libyaml's do. */
        size_t end = p->yaml.problem_offset < p->len ? p->yaml.problem_offset : p->len;
        m = (struct mark){1, 1};
        for (size_t i = 0; i < end; i++) {
            if (p->text[i] == '\n') {
                m = (struct mark){m.line + 1, 1};
            } else if (((unsigned char)p->text[i] & 0xC0) != 0x80) {
                m.col++;
            }
        }
    }
    return conf_fail_at(p, m, "", "invalid YAML: %s", problem);
}

/* Moves to the next event. Aliases are refused here, once for every place a value can be: the
 * tables describe a tree, and resolving aliases would let a small file expand without bound. */
static int next(struct parser *p)
{
    if (p->have_ev) {
        yaml_event_delete(&p->ev);
        p->have_ev = false;
    }
    if (!yaml_parser_parse(&p->yaml, &p->ev)) {
        return syntax_error(p);
    }
    p->have_ev = true;
    if (p->ev.type == YAML_ALIAS_EVENT) {
        return fail(p, "aliases are not supported");
    }
    return 0;
}

/* The current event as text, checked to hold no NUL or other control bytes (a tab is fine): they
 * would silently cut a C string short or break the files other modules write from these values. */
static int scalar_text(struct parser *p, const char **out)
{
    const unsigned char *s = p->ev.data.scalar.value;

    for (size_t i = 0; i < p->ev.data.scalar.length; i++) {
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F) {
            return fail(p, "expected text without control characters");
        }
    }
    *out = (const char *)s;
    return 0;
}

static int expect(struct parser *p, yaml_event_type_t type, const char *what)
{
    if (p->ev.type != type) {
        return fail(p, "expected %s, got %s", what, kind(&p->ev));
    }
    return 0;
}

static int parse_mapping(struct parser *p, const struct conf_key *table, void *base);

static int parse_scalar(struct parser *p, const struct conf_key *k, void *base)
{
    char why[RPG_ERRMSG_SIZE];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 || (rv = scalar_text(p, &s)) != 0) {
        return rv;
    }
    if (!conf_convert(k, base, s, why, sizeof why)) {
        return fail(p, "%s", why);
    }
    return 0;
}

/* A member's name, raft address and api address must each differ from every earlier member's:
 * libraft identifies nodes by these, and two members on one address could never both run. */
static int check_member(struct parser *p, const struct conf_member *members, unsigned i)
{
    static const struct {
        const char *key, *what;
        size_t off;
    } fields[] = {
        {"name", "member name", offsetof(struct conf_member, name)},
        {"raft", "raft address", offsetof(struct conf_member, raft)},
        {"api", "api address", offsetof(struct conf_member, api)},
    };
    char q[48];

    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        const char *mine = (const char *)&members[i] + fields[f].off;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(mine, (const char *)&members[j] + fields[f].off) != 0) {
                continue;
            }
            struct mark m = conf_where_first(p, p->path, NULL); /* the entry, then the field */
            path_push(p, ".%s", fields[f].key);
            conf_where_find(p, p->path, &m);
            return conf_fail_at(p, m, p->path, "duplicate %s %s", fields[f].what,
                                conf_quote(mine, q));
        }
    }
    return 0;
}

static int parse_members(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_member *members = (struct conf_member *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    struct mark start = ev_mark(p);
    int rv;

    assert(k->size == sizeof *members);
    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            break;
        }
        if (*n == (unsigned)k->max) {
            return fail(p, "expected %ld..%ld members, got more", k->min, k->max);
        }
        size_t saved = path_push(p, "[%u]", *n);
        where_add(p, ev_mark(p));
        if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping")) != 0 ||
            (rv = parse_mapping(p, k->sub, &members[*n])) != 0) {
            return rv;
        }
        (*n)++;
        if ((rv = check_member(p, members, *n - 1)) != 0) {
            return rv;
        }
        path_pop(p, saved);
    }
    if (*n < (unsigned)k->min) {
        return conf_fail_at(p, start, p->path, "expected %ld..%ld members, got %u", k->min, k->max,
                            *n);
    }
    return 0;
}

/* postgresql.parameters: values are kept as written, so "128MB" or "on" reach PostgreSQL
 * unchanged; YAML 1.1 typing ("on" -> true) would change them. */
static int parse_params(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char q[48];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            return 0;
        }
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar key")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        if (!conf_is_param_name(s)) {
            return fail(p, "expected a parameter name, got %s", conf_quote(s, q));
        }
        if (*n == CONF_LIST_MAX) {
            return fail(p, "expected at most %d parameters", CONF_LIST_MAX);
        }
        size_t saved = path_push(p, ".%s", s);
        for (unsigned i = 0; i < *n; i++) {
            /* PostgreSQL reads Work_Mem and work_mem as one setting. */
            if (strcasecmp((*kv)[i].key, s) == 0) {
                return fail(p, "duplicate key");
            }
        }
        char *key = strdup(s);
        if (key == NULL) {
            return fail_nomem(p);
        }
        if ((rv = next(p)) != 0 || (rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            free(key);
            return rv;
        }
        where_add_dcs_entry(p, *n);
        char *value = strdup(s);
        struct conf_kv *grown = value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv) : NULL;
        if (grown == NULL) {
            free(key);
            free(value);
            return fail_nomem(p);
        }
        *kv = grown;
        grown[*n] = (struct conf_kv){key, value};
        (*n)++;
        path_pop(p, saved);
    }
}

/* restapi.http_extra_headers and https_extra_headers: names and values checked by
 * conf_header_check, a name given twice (in any case: HTTP names are case-insensitive) refused. */
static int parse_headers(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char why[RPG_ERRMSG_SIZE];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping of header names to values")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            return 0;
        }
        /* Raw text, not scalar_text: conf_header_check says why a control character is
         * refused here (an embedded NUL counts as one). */
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a header name")) != 0) {
            return rv;
        }
        s = (const char *)p->ev.data.scalar.value;
        if (strlen(s) != p->ev.data.scalar.length) {
            return fail(p, "expected a header name, got one with a NUL byte (at offset %zu)",
                        strlen(s));
        }
        if (*n == CONF_HEADERS_MAX) {
            return fail(p, "expected at most %d headers", CONF_HEADERS_MAX);
        }
        /* A name is part of the key in messages once it is known to be a token. */
        size_t len = strlen(s);
        bool token = len > 0 && len < CONF_HEADER_NAME_MAX && strspn(s, HEADER_TCHARS) == len;
        size_t saved = token ? path_push(p, ".%s", s) : p->path_len;
        if (!conf_header_check(s, "x", why, sizeof why)) {
            return fail(p, "%s", why);
        }
        for (unsigned i = 0; i < *n; i++) {
            if (strcasecmp((*kv)[i].key, s) == 0) {
                return fail(p, "duplicate header (names are compared without regard to case)");
            }
        }
        char *key = strdup(s);
        if (key == NULL) {
            return fail_nomem(p);
        }
        if ((rv = next(p)) != 0 || (rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0) {
            free(key);
            return rv;
        }
        s = (const char *)p->ev.data.scalar.value;
        if (strlen(s) != p->ev.data.scalar.length) {
            free(key);
            return fail(p,
                        "the value has a control character (a NUL byte at offset %zu): a CR or LF "
                        "would let it write headers of its own",
                        strlen(s));
        }
        if (!conf_header_check(key, s, why, sizeof why)) {
            free(key);
            return fail(p, "%s", why);
        }
        char *value = strdup(s);
        struct conf_kv *grown = value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv) : NULL;
        if (grown == NULL) {
            free(key);
            free(value);
            return fail_nomem(p);
        }
        *kv = grown;
        grown[*n] = (struct conf_kv){key, value};
        (*n)++;
        path_pop(p, saved);
    }
}

/* The value of one key of a "*" row (user tags; parse_mapping checked the name): a scalar,
 * kept as text. */
static int parse_other(struct parser *p, const struct conf_key *k, void *base, const char *name)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    const char *s = NULL;
    int rv;
    bool arg = k->type == KEY_ARGS;
    if (*n == CONF_USER_TAGS_MAX) {
        return fail(p, "expected at most %d %s", CONF_USER_TAGS_MAX,
                    arg ? "arguments" : "user tags");
    }
    if ((rv = expect(p, YAML_SCALAR_EVENT,
                     arg ? "a scalar (an argument's value)" : "a scalar (a user tag's value)")) !=
            0 ||
        (rv = scalar_text(p, &s)) != 0) {
        return rv;
    }
    char *key = strdup(name), *value = strdup(s);
    struct conf_kv *grown = key != NULL && value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv)
                                                         : NULL;
    if (grown == NULL) {
        free(key);
        free(value);
        return fail_nomem(p);
    }
    *kv = grown;
    grown[(*n)++] = (struct conf_kv){key, value};
    return 0;
}

static int parse_strlist(struct parser *p, const struct conf_key *k, void *base)
{
    char ***list = (char ***)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }
        if (*n == CONF_LIST_MAX) {
            return fail(p, "expected at most %d entries", CONF_LIST_MAX);
        }
        size_t saved = path_push(p, "[%u]", *n);
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        where_add_dcs_entry(p, *n);
        char *copy = strdup(s);
        char **grown = copy != NULL ? realloc(*list, (*n + 1) * sizeof **list) : NULL;
        if (grown == NULL) {
            free(copy);
            return fail_nomem(p);
        }
        *list = grown;
        grown[(*n)++] = copy;
        path_pop(p, saved);
    }
}

/* A sequence of allowlist entries (Patroni's restapi.allowlist): an address, a network
 * ADDR/PREFIX, or a host name resolved now, each of its addresses a host network. */
static int parse_netlist(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_net *list = (struct conf_net *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char why[RPG_ERRMSG_SIZE], q[48];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (unsigned entry = 0;; entry++) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }
        size_t saved = path_push(p, "[%u]", entry);
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        struct conf_net nets[16];
        unsigned got = 0;
        if (conf_net_parse(s, &nets[0], why, sizeof why) == 0) {
            got = 1;
        } else if (strchr(s, '/') != NULL || strchr(s, ':') != NULL || !conf_is_hostname(s)) {
            return fail(p, "%s", why);
        } else {
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int gai = getaddrinfo(s, NULL, &hints, &res);
            if (gai != 0) {
                return fail(p, "cannot resolve the host name %s: %s", conf_quote(s, q),
                            gai_strerror(gai));
            }
            for (struct addrinfo *ai = res; ai != NULL && got < 16; ai = ai->ai_next) {
                char text[INET6_ADDRSTRLEN];
                const void *a =
                    ai->ai_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    inet_ntop(ai->ai_family, a, text, sizeof text) == NULL ||
                    conf_net_parse(text, &nets[got], why, sizeof why) != 0) {
                    continue;
                }
                bool dup = false;
                for (unsigned i = 0; i < got && !dup; i++) {
                    dup = memcmp(&nets[i], &nets[got], sizeof nets[i]) == 0;
                }
                got += dup ? 0 : 1;
            }
            freeaddrinfo(res);
            if (got == 0) {
                return fail(p, "the host name %s has no IPv4 or IPv6 address", conf_quote(s, q));
            }
        }
        if (*n + got > CONF_ALLOWLIST_MAX) {
            return fail(p,
                        "expected at most %d addresses and networks (host names count as many "
                        "as they resolve to)",
                        CONF_ALLOWLIST_MAX);
        }
        memcpy(list + *n, nets, got * sizeof nets[0]);
        *n += got;
        path_pop(p, saved);
    }
}

/* Skips the value that starts at the current event, however deep. */
static int skip_value(struct parser *p)
{
    int depth = 0, rv;
    do {
        if (p->ev.type == YAML_MAPPING_START_EVENT || p->ev.type == YAML_SEQUENCE_START_EVENT) {
            depth++;
        } else if (p->ev.type == YAML_MAPPING_END_EVENT || p->ev.type == YAML_SEQUENCE_END_EVENT) {
            depth--;
        }
        if (depth > 0 && (rv = next(p)) != 0) {
            return rv;
        }
    } while (depth > 0);
    return 0;
}

/* A key that is read but has no effect: noted for the log and check-config. */
static int ignore_value(struct parser *p, const struct conf_key *k)
{
    struct conf *c = p->c;
    struct mark m = ev_mark(p);
    if (c->n_warnings < CONF_WARNINGS_MAX) {
        rpg_fmt(c->warnings[c->n_warnings], sizeof c->warnings[0], "%s:%lu:%lu: %s: ignored: %s",
                p->file, m.line, m.col, p->path, k->why);
    }
    c->n_warnings++;
    return skip_value(p);
}

/* A key of bootstrap that no row names: a custom method's section (Patroni's
 * bootstrap.<method>), whose value the current event after the key starts. */
static int parse_method(struct parser *p, const struct conf_key *k, void *base, const char *key)
{
    struct conf_boot_method *m = (struct conf_boot_method *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char name[CONF_NAME_MAX];
    int rv;
    /* key lives in the current event, which next() frees. */
    snprintf(name, sizeof name, "%s", key);
    if (strlen(key) >= sizeof m->name || !conf_is_arg_name(key)) {
        return fail(p, "unknown key (a custom bootstrap method's name is 1..63 characters from "
                       "[A-Za-z0-9_.-])");
    }
    for (unsigned i = 0; i < *n; i++) {
        if (strcmp(m[i].name, name) == 0) {
            return fail(p, "duplicate key");
        }
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
        return fail(p,
                    "unknown key (a custom bootstrap method, which bootstrap.method names, is "
                    "a mapping with a command; got %s)",
                    kind(&p->ev));
    }
    if (*n == (unsigned)k->max) {
        return fail(p, "expected at most %ld custom bootstrap methods", k->max);
    }
    where_add(p, ev_mark(p));
    snprintf(m[*n].name, sizeof m[*n].name, "%s", name);
    (*n)++;
    return parse_mapping(p, conf_method_keys, &m[*n - 1]);
}

static int parse_value(struct parser *p, const struct conf_key *k, void *base)
{
    switch (k->type) {
    case KEY_IGNORED: return ignore_value(p, k);
    case KEY_REFUSED: return fail(p, "not supported: %s", k->why);
    case KEY_SECTION: {
        int rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping");
        return rv != 0 ? rv : parse_mapping(p, k->sub, base);
    }
    case KEY_MEMBERS: return parse_members(p, k, base);
    case KEY_PARAMS: return parse_params(p, k, base);
    case KEY_HEADERS: return parse_headers(p, k, base);
    case KEY_STRLIST: return parse_strlist(p, k, base);
    case KEY_NETLIST: return parse_netlist(p, k, base);
    default: return parse_scalar(p, k, base);
    }
}

/* Parses the mapping whose MAPPING-START is the current event, keys from table. Unknown and
 * duplicate keys are errors; missing required keys are reported at the mapping's start. */
static int parse_mapping(struct parser *p, const struct conf_key *table, void *base)
{
    struct mark start = ev_mark(p);
    uint64_t seen = 0;
    const char *s = NULL;
    int rv;

    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            break;
        }
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar key")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        const struct conf_key *k = table, *other = NULL;
        while (k->key != NULL && strcmp(k->key, s) != 0) {
            other = strcmp(k->key, "*") == 0 ? k : other;
            k++;
        }
        if (k->key == NULL && other != NULL && other->type == KEY_METHOD) {
            size_t saved = path_push(p, ".%.40s", s);
            if ((rv = parse_method(p, other, base, s)) != 0) {
                return rv;
            }
            path_pop(p, saved);
            continue;
        }
        if (k->key == NULL && other != NULL) {
            /* A custom bootstrap method's extra arguments, or user tags. */
            bool args = other->type == KEY_ARGS;
            char name[64];
            size_t saved = path_push(p, ".%.40s", s);
            if (!(args ? conf_is_arg_name(s) : conf_is_param_name(s)) || strlen(s) >= sizeof name) {
                return fail(p, args ? "expected an argument name of 1..63 characters from "
                                      "[A-Za-z0-9_.-] (passed to command as --name=value) or one "
                                      "of command, no_params, keep_existing_recovery_conf"
                                    : "expected a key of 1..63 characters from [A-Za-z0-9_.] (a "
                                      "user tag) or one of the known keys");
            }
            const struct conf_kv *kv = *(struct conf_kv **)((char *)base + other->off);
            for (unsigned i = 0; i < *(unsigned *)((char *)base + other->count_off); i++) {
                if (strcmp(kv[i].key, s) == 0) {
                    return fail(p, "duplicate key");
                }
            }
            snprintf(name, sizeof name, "%s", s);
            if ((rv = next(p)) != 0) {
                return rv;
            }
            where_add(p, ev_mark(p));
            if ((rv = parse_other(p, other, base, name)) != 0) {
                return rv;
            }
            path_pop(p, saved);
            continue;
        }
        if (k->key == NULL) {
            path_push(p, ".%.40s", s); /* cut short: the key is whatever the file says */
            return fail(p, "unknown key");
        }
        size_t bit = (size_t)(k - table);
        assert(bit < 64 && "a key table has more than 64 rows");
        size_t saved = path_push(p, ".%s", k->key);
        if (seen & (UINT64_C(1) << bit)) {
            return fail(p, "duplicate key");
        }
        seen |= UINT64_C(1) << bit;
        if ((rv = next(p)) != 0) {
            return rv;
        }
        where_add(p, ev_mark(p));
        if ((rv = parse_value(p, k, base)) != 0) {
            return rv;
        }
        path_pop(p, saved);
    }
    for (const struct conf_key *k = table; k->key != NULL; k++) {
        if (k->required && !(seen & (UINT64_C(1) << (k - table)))) {
            path_push(p, ".%s", k->key);
            return conf_fail_at(p, start, p->path, "required key is missing");
        }
    }
    return 0;
}

int conf_parse_document(struct parser *p)
{
    int rv;

    if ((rv = next(p)) != 0) { /* STREAM-START */
        return rv;
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type == YAML_STREAM_END_EVENT) {
        return conf_fail_at(p, (struct mark){1, 1}, "", "empty configuration, expected a mapping");
    }
    assert(p->ev.type == YAML_DOCUMENT_START_EVENT);
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type == YAML_SCALAR_EVENT && p->ev.data.scalar.length == 0) {
        return conf_fail_at(p, (struct mark){1, 1}, "", "empty configuration, expected a mapping");
    }
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
        return fail(p, "expected a mapping at the top level, got %s", kind(&p->ev));
    }
    where_add(p, ev_mark(p));
    if ((rv = parse_mapping(p, conf_root_keys, p->c)) != 0) {
        return rv;
    }
    if ((rv = next(p)) != 0) { /* DOCUMENT-END */
        return rv;
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type != YAML_STREAM_END_EVENT) {
        return fail(p, "expected one YAML document, got more");
    }
    return conf_finish(p);
}

/* Reads the whole stream once for syntax alone. libyaml emits a scalar before it finds that the
 * next line breaks the syntax ("scope: demo" then " name: x" reads as "demo name"), so without
 * this pass a mangled value would be reported instead of the real mistake. */
int conf_check_syntax(struct parser *p)
{
    yaml_event_type_t type;

    do {
        if (!yaml_parser_parse(&p->yaml, &p->ev)) {
            return syntax_error(p);
        }
        type = p->ev.type;
        yaml_event_delete(&p->ev);
    } while (type != YAML_STREAM_END_EVENT);
    return 0;
}

/* Runs one pass over the input with a fresh libyaml parser. */
int conf_run_pass(struct parser *p, int (*pass)(struct parser *))
{
    int rv;

    if (!yaml_parser_initialize(&p->yaml)) {
        return fail_nomem(p);
    }
    yaml_parser_set_input_string(&p->yaml, (const unsigned char *)p->text, p->len);
    rv = pass(p);
    if (p->have_ev) {
        yaml_event_delete(&p->ev);
        p->have_ev = false;
    }
    yaml_parser_delete(&p->yaml);
    return rv;
}
