/* conf's private header: what its files share and nothing outside conf uses. conf.c loads a file
 * or a string into struct conf and frees it, with the small public helpers; conf_keys.c holds the
 * key tables and the names of their enum values; conf_parse.c the libyaml walker, the positions it
 * keeps and its error messages; conf_value.c the conversion and checks of scalars, addresses,
 * names, networks and HTTP headers; conf_finish.c the checks that span keys, run once the whole
 * file is read; conf_secret.c the cluster secret files. */
#ifndef RAFTPG_CONF_INT_H
#define RAFTPG_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "raftpg/conf.h"

/* How a key's value is checked and stored. */
enum key_type {
    KEY_STRING,  /* text of min..size-1 bytes */
    KEY_NAME,    /* [A-Za-z0-9_.-]{1,size-1} */
    KEY_LISTEN,  /* IPv4 address:port to bind to; 0.0.0.0 allowed */
    KEY_ADDR,    /* IPv4 address:port other nodes connect to; 0.0.0.0 refused */
    KEY_PATH,    /* absolute path */
    KEY_UINT,    /* unsigned, min..max */
    KEY_INT,     /* int, min..max */
    KEY_BOOL,    /* bool: true/false, yes/no, on/off */
    KEY_ENUM,    /* an enum (int-sized), the index of the value in names */
    KEY_SECTION, /* a mapping described by sub, with the same base */
    KEY_MEMBERS, /* a sequence of min..max mappings into struct conf_member, described by sub */
    KEY_PARAMS,  /* a mapping of scalars into a struct conf_kv array, kept as text */
    KEY_STRLIST, /* a sequence of scalars into a char * array */
    KEY_NETLIST, /* a sequence of addresses, networks or host names into a struct conf_net array */
    KEY_CIDR,    /* IPv4 unicast host address/prefix into a struct conf_cidr */
    KEY_IFNAME,  /* a Linux network interface name */
    KEY_OTHER,   /* key "*": any key no other row names, a scalar into a struct conf_kv array */
    KEY_HEADERS, /* a mapping of HTTP header names to values into a struct conf_kv array */
    KEY_MAX_LAG, /* a number of bytes 0..CONF_MAX_LAG_MAX, or null, into a struct conf_max_lag */
    KEY_SYNC_MODE, /* off/quorum/strict, or Patroni's on/true (quorum) and false (off), int-sized */
    KEY_IGNORED,   /* a Patroni key without effect here: any value, a warning saying why */
    KEY_REFUSED,   /* a Patroni key raftpg cannot honour: an error saying why */
    KEY_METHOD,    /* key "*" under bootstrap: a custom method's mapping into methods[] */
    KEY_ARGS,      /* key "*" in a custom method: a scalar passed as --key=value */
};

/* One row of a key table. Offsets are from the base the table is walked with: struct conf for
 * the top level and its sections, struct conf_member for raft.members entries. */
struct conf_key {
    const char *key;
    enum key_type type;
    size_t off;       /* the field */
    size_t size;      /* strings: buffer size; KEY_MEMBERS: element size */
    size_t count_off; /* lists: the unsigned element count */
    long min, max;    /* integers: range; KEY_STRING: minimum length; KEY_MEMBERS: entries */
    const char *def;  /* default, written as in the file and parsed like it; NULL: none */
    bool required;
    const struct conf_key *sub; /* KEY_SECTION, KEY_MEMBERS */
    const char *const *names;   /* KEY_ENUM, NULL-terminated, indexed by value */
    const char *why;            /* KEY_IGNORED, KEY_REFUSED: what stands in its place */
};

/* A position in the file, counted from 1. */
struct mark {
    unsigned long line, col;
};

/* Upper bound on the table keys, sections, members[i] entries, user tags and bootstrap.dcs list
 * entries (at most 2 * 32 kept) one file can set (under 300 today, all of them set at once);
 * positions past it are not kept and conf_finish() falls back to an enclosing mapping. */
#define WHERE_MAX 384

struct parser {
    yaml_parser_t yaml;
    yaml_event_t ev; /* valid when have_ev */
    bool have_ev;
    const char *file;
    const char *text; /* the input, to place reader errors, which libyaml gives as an offset */
    size_t len;
    char *errmsg;
    struct conf *c;
    char path[256]; /* dotted path of the key being parsed, for messages */
    size_t path_len;
    /* Where each table key's value (and each section) started, for checks that run after the
     * whole file is read. */
    struct {
        char path[96]; /* the longest key path a table holds fits, with room */
        struct mark mark;
    } where[WHERE_MAX];
    unsigned n_where;
};

/* The characters of an HTTP token (RFC 9110 §5.6.2), which a header name is. */
#define HEADER_TCHARS                                                                              \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"

/* ---- key tables (conf_keys.c) ---- */

/* The top level's keys, walked with struct conf as base. */
extern const struct conf_key conf_root_keys[];
/* A custom bootstrap method's keys, walked with a struct conf_boot_method as base. */
extern const struct conf_key conf_method_keys[];
/* NULL-terminated, indexed like SYNC_MODE_*, FSM_SYNC_COMMIT_* and CONF_VERIFY_*. */
extern const char *const conf_sync_mode_names[];
extern const char *const conf_sync_commit_names[];
extern const char *const conf_verify_client_names[];

/* ---- the walker (conf_parse.c) ---- */

/* Writes "file:line:col: key: message" (no key when key is "") into p->errmsg; returns
 * RPG_ECONFIG. */
__attribute__((format(printf, 4, 5))) int conf_fail_at(struct parser *p, struct mark m,
                                                       const char *key, const char *fmt, ...);
/* Whether the value of path (a dotted key path) was in the file; its position into m if not
 * NULL. */
bool conf_where_find(const struct parser *p, const char *path, struct mark *m);
/* The position of the first of the paths that was set (b may be NULL), or 1:1. */
struct mark conf_where_first(const struct parser *p, const char *a, const char *b);
/* Runs pass over p->text with a fresh libyaml parser. */
int conf_run_pass(struct parser *p, int (*pass)(struct parser *));
/* The passes: the syntax alone, then the document into p->c, ending with conf_finish. */
int conf_check_syntax(struct parser *p);
int conf_parse_document(struct parser *p);

/* ---- values (conf_value.c) ---- */

/* Formats s for a message as "s", cut at 40 bytes (on a UTF-8 boundary) with "..." added. */
const char *conf_quote(const char *s, char out[48]);
/* Converts s into the field k describes at base; on failure false, and what was expected in
 * why. */
bool conf_convert(const struct conf_key *k, void *base, const char *s, char *why, size_t n);
/* Writes every default of table (and its sections) at base. */
void conf_apply_defaults(const struct conf_key *table, void *base);
bool conf_is_wildcard(const char *addr);
bool conf_is_param_name(const char *s);
bool conf_is_hostname(const char *s);
bool conf_is_arg_name(const char *s);

/* ---- checks across keys (conf_finish.c) ---- */

/* Checks that span keys and fills the defaults that depend on other keys. */
int conf_finish(struct parser *p);

#endif
