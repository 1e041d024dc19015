/* The dynamic configuration as an operator edits it (cfgdoc.h). */
#include "raftpg/cfgdoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "raftpg/err.h"

/* Deeper than any configuration goes: a bound on the recursion, not a limit anyone meets. */
#define CFGDOC_DEPTH_MAX 32

struct reader {
    yaml_parser_t parser;
    const char *where;
    char *errmsg;
};

static int fail_at(struct reader *r, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct reader *r, const yaml_mark_t *m, const char *fmt, ...)
{
    char what[RPG_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rpg_err(r->errmsg, RPG_EINVAL, "%s:%zu:%zu: %s", r->where, m->line + 1, m->column + 1,
                   what);
}

static int next_event(struct reader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->parser, ev)) {
        return 0;
    }
    const yaml_parser_t *p = &r->parser;
    if (p->context != NULL) {
        return fail_at(r, &p->problem_mark, "%s %s", p->problem != NULL ? p->problem : "error",
                       p->context);
    }
    return fail_at(r, &p->problem_mark, "%s", p->problem != NULL ? p->problem : "cannot parse");
}

static bool word_in(const char *v, const char *const *words)
{
    for (; *words != NULL; words++) {
        if (strcmp(v, *words) == 0) {
            return true;
        }
    }
    return false;
}

/* A scalar typed by the YAML 1.2 core schema (cfgdoc.h). */
static json_t *scalar_value(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag != NULL ||
        strlen(v) != len) {
        return json_stringn(v, len);
    }
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (word_in(v, nulls)) {
        return json_null();
    }
    if (word_in(v, trues)) {
        return json_true();
    }
    if (word_in(v, falses)) {
        return json_false();
    }
    size_t i = v[0] == '-' || v[0] == '+' ? 1 : 0;
    bool digits = v[i] != '\0';
    for (; v[i] != '\0' && digits; i++) {
        digits = v[i] >= '0' && v[i] <= '9';
    }
    if (digits) {
        errno = 0;
        char *end = NULL;
        long long n = strtoll(v, &end, 10);
        if (errno == 0 && *end == '\0') {
            return json_integer((json_int_t)n);
        }
    }
    return json_stringn(v, len);
}

/* Reads the node that ev (consumed by the caller) starts into *out. */
static int read_node(struct reader *r, const yaml_event_t *ev, int depth, json_t **out)
{
    *out = NULL;
    if (depth > CFGDOC_DEPTH_MAX) {
        return fail_at(r, &ev->start_mark, "nested deeper than %d levels", CFGDOC_DEPTH_MAX);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        *out = scalar_value(ev);
        return *out != NULL ? 0 : fail_at(r, &ev->start_mark, "a value that is not UTF-8");
    case YAML_ALIAS_EVENT: return fail_at(r, &ev->start_mark, "aliases (*name) are not supported");
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: break;
    default: return fail_at(r, &ev->start_mark, "unexpected YAML event %d", (int)ev->type);
    }
    bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
    json_t *node = seq ? json_array() : json_object();
    for (;;) {
        yaml_event_t e;
        int rc = next_event(r, &e);
        if (rc != 0) {
            json_decref(node);
            return rc;
        }
        if (e.type == (seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT)) {
            yaml_event_delete(&e);
            break;
        }
        if (seq) {
            json_t *item = NULL;
            rc = read_node(r, &e, depth + 1, &item);
            yaml_event_delete(&e);
            if (rc != 0) {
                json_decref(node);
                return rc;
            }
            json_array_append_new(node, item);
            continue;
        }
        if (e.type != YAML_SCALAR_EVENT) {
            rc = fail_at(r, &e.start_mark, "a key must be a plain word, not a list or a mapping");
            yaml_event_delete(&e);
            json_decref(node);
            return rc;
        }
        char *key = strndup((const char *)e.data.scalar.value, e.data.scalar.length);
        yaml_mark_t key_mark = e.start_mark;
        yaml_event_delete(&e);
        if (key == NULL) {
            json_decref(node);
            return rpg_err(r->errmsg, RPG_ENOMEM, "%s: out of memory", r->where);
        }
        if (json_object_get(node, key) != NULL) {
            rc = fail_at(r, &key_mark, "duplicate key \"%.64s\"", key);
            free(key);
            json_decref(node);
            return rc;
        }
        json_t *value = NULL;
        rc = next_event(r, &e);
        if (rc == 0) {
            rc = read_node(r, &e, depth + 1, &value);
            yaml_event_delete(&e);
        }
        if (rc != 0) {
            free(key);
            json_decref(node);
            return rc;
        }
        json_object_set_new(node, key, value);
        free(key);
    }
    *out = node;
    return 0;
}

/* Expects an event of type want next; what names it in the error. */
static int expect(struct reader *r, yaml_event_type_t want, const char *what)
{
    yaml_event_t e;
    int rc = next_event(r, &e);
    if (rc != 0) {
        return rc;
    }
    if (e.type != want) {
        rc = fail_at(r, &e.start_mark, "%s", what);
    }
    yaml_event_delete(&e);
    return rc;
}

int cfgdoc_parse(const char *text, size_t len, const char *where, json_t **out, char *errmsg)
{
    struct reader r = {.where = where, .errmsg = errmsg};
    *out = NULL;
    if (!yaml_parser_initialize(&r.parser)) {
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", where);
    }
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    json_t *doc = NULL;
    yaml_event_t e;
    int rc = expect(&r, YAML_STREAM_START_EVENT, "expected the start of a document");
    if (rc == 0) {
        rc = next_event(&r, &e);
    }
    if (rc == 0) {
        if (e.type != YAML_DOCUMENT_START_EVENT) {
            rc = fail_at(&r, &e.start_mark, "empty document (expected key: value lines)");
        }
        yaml_event_delete(&e);
    }
    if (rc == 0) {
        rc = next_event(&r, &e);
    }
    if (rc == 0) {
        yaml_mark_t top = e.start_mark;
        rc = read_node(&r, &e, 0, &doc);
        yaml_event_delete(&e);
        if (rc == 0 && !json_is_object(doc)) {
            rc = fail_at(&r, &top, "expected a mapping (key: value lines) at the top");
        }
    }
    if (rc == 0) {
        rc = expect(&r, YAML_DOCUMENT_END_EVENT, "expected the end of the document");
    }
    if (rc == 0) {
        rc = expect(&r, YAML_STREAM_END_EVENT, "expected one document, found another (---)");
    }
    yaml_parser_delete(&r.parser);
    if (rc != 0) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

/* A string as a YAML scalar: plain when it reads back as the same string, else single-quoted.
 * Words some YAML readers take for booleans or null (on, off, yes, no) are quoted too. */
static void print_string(FILE *f, const char *v)
{
    static const char *const special[] = {"null", "true", "false", "on", "off",
                                          "yes",  "no",   "y",     "n",  NULL};
    bool plain = v[0] != '\0';
    for (const char *const *w = special; *w != NULL && plain; w++) {
        plain = strcasecmp(v, *w) != 0;
    }
    for (const char *p = v; *p != '\0' && plain; p++) {
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_' || *p == '.' || *p == '/' || *p == '-';
    }
    if (plain) {
        fputs(v, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\'') {
            fputc('\'', f);
        }
        fputc(*p, f);
    }
    fputc('\'', f);
}

static void print_scalar(FILE *f, json_t *v)
{
    if (json_is_string(v)) {
        print_string(f, json_string_value(v));
    } else if (json_is_integer(v)) {
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        fprintf(f, "%.17g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "true" : "false", f);
    } else if (json_is_null(v)) {
        fputs("null", f);
    } else {
        /* A mapping or list where a scalar was expected: JSON is YAML's flow style. */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fputs(s != NULL ? s : "null", f);
        free(s);
    }
}

/* key: value at indent, mappings and lists in block style. */
static void print_entry(FILE *f, int indent, const char *key, json_t *v)
{
    fprintf(f, "%*s", indent, "");
    print_string(f, key);
    fputc(':', f);
    if (json_is_object(v) && json_object_size(v) > 0) {
        fputc('\n', f);
        const char *k;
        json_t *sub;
        json_object_foreach(v, k, sub) {
            print_entry(f, indent + 2, k, sub);
        }
        return;
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        fputc('\n', f);
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            /* A list under a key at the key's own indentation, as show-config always wrote. */
            fprintf(f, "%*s- ", indent, "");
            print_scalar(f, item);
            fputc('\n', f);
        }
        return;
    }
    fputc(' ', f);
    if (json_is_object(v)) {
        fputs("{}", f);
    } else if (json_is_array(v)) {
        fputs("[]", f);
    } else {
        print_scalar(f, v);
    }
    fputc('\n', f);
}

static const char *const sync_keys[] = {"synchronous_mode", "synchronous_node_count",
                                        "synchronous_commit", NULL};

void cfgdoc_print(FILE *f, json_t *doc)
{
    for (const char *const *k = sync_keys; *k != NULL; k++) {
        json_t *v = json_object_get(doc, *k);
        if (v == NULL) {
            continue;
        }
        const char *s = json_string_value(v);
        /* The settings' own words as they are (synchronous_commit: on), as show-config always
         * printed them: this reader takes on as a string. */
        if (s != NULL && s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz_") == strlen(s)) {
            fprintf(f, "%s: %s\n", *k, s);
        } else {
            print_entry(f, 0, *k, v);
        }
    }
    json_t *pg = json_object_get(doc, "postgresql");
    if (json_is_object(pg)) {
        json_t *params = json_object_get(pg, "parameters");
        json_t *hba = json_object_get(pg, "pg_hba");
        bool other = false;
        const char *k;
        json_t *v;
        json_object_foreach(pg, k, v) {
            other = other || (strcmp(k, "parameters") != 0 && strcmp(k, "pg_hba") != 0) ||
                    json_is_null(v);
        }
        /* Empty parameters and no pg_hba: nothing set, nothing shown. */
        bool show_params = params != NULL &&
                           !(json_is_object(params) && json_object_size(params) == 0);
        bool show_hba = hba != NULL && !(json_is_array(hba) && json_array_size(hba) == 0);
        if (show_params || show_hba || other) {
            fputs("postgresql:\n", f);
        }
        json_object_foreach(pg, k, v) {
            if ((strcmp(k, "parameters") == 0 && !show_params) ||
                (strcmp(k, "pg_hba") == 0 && !show_hba)) {
                continue;
            }
            print_entry(f, 2, k, v);
        }
    } else if (pg != NULL) {
        print_entry(f, 0, "postgresql", pg);
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        bool known = strcmp(k, "postgresql") == 0 || strcmp(k, "pause") == 0 ||
                     strcmp(k, "recorded") == 0 || word_in(k, sync_keys);
        if (!known) {
            print_entry(f, 0, k, v);
        }
    }
}

char *cfgdoc_format(json_t *doc)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL) {
        return NULL;
    }
    cfgdoc_print(f, doc);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void cfgdoc_merge(json_t *dst, json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(dst, k);
        } else if (json_is_object(v)) {
            json_t *d = json_object_get(dst, k);
            if (!json_is_object(d)) {
                d = json_object();
                json_object_set_new(dst, k, d);
            }
            cfgdoc_merge(d, v);
        } else {
            json_object_set_new(dst, k, json_deep_copy(v));
        }
    }
}

/* ---- unified diff ------------------------------------------------------------------------ */

/* Beyond this many cells the line-by-line comparison would cost too much memory: the diff is
 * then one hunk, all lines out and all lines in. */
#define DIFF_CELLS_MAX (4u * 1024 * 1024)
#define DIFF_CONTEXT 3

struct lines {
    size_t n;
    const char **at; /* the start of each line, within the text */
    size_t *len;
};

static int split_lines(const char *text, struct lines *l)
{
    size_t cap = 1;
    for (const char *p = text; *p != '\0'; p++) {
        cap += *p == '\n';
    }
    l->n = 0;
    l->at = calloc(cap, sizeof *l->at);
    l->len = calloc(cap, sizeof *l->len);
    if (l->at == NULL || l->len == NULL) {
        return RPG_ENOMEM;
    }
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        l->at[l->n] = p;
        l->len[l->n++] = len;
        p += len + (nl != NULL);
    }
    return 0;
}

static bool same_line(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->at[i], b->at[j], a->len[i]) == 0;
}

enum diff_op { DIFF_EQUAL, DIFF_DELETE, DIFF_INSERT };

struct diff_step {
    enum diff_op op;
    size_t a, b; /* the line in before and in after where the step is */
};

/* difflib's range: "START,LENGTH", or "START" for one line, START before an empty range. */
static void print_range(FILE *f, size_t start, size_t length)
{
    if (length == 1) {
        fprintf(f, "%zu", start + 1);
    } else {
        fprintf(f, "%zu,%zu", length == 0 ? start : start + 1, length);
    }
}

int cfgdoc_diff(FILE *f, const char *before, const char *after, const char *label_before,
                const char *label_after)
{
    struct lines a = {0}, b = {0};
    struct diff_step *steps = NULL;
    unsigned *lcs = NULL;
    int rc = RPG_ENOMEM;
    if (split_lines(before, &a) != 0 || split_lines(after, &b) != 0) {
        goto out;
    }
    steps = calloc(a.n + b.n + 1, sizeof *steps);
    if (steps == NULL) {
        goto out;
    }
    size_t w = b.n + 1, n = 0;
    bool small = (a.n + 1) * w <= DIFF_CELLS_MAX;
    if (small && (lcs = calloc((a.n + 1) * w, sizeof *lcs)) == NULL) {
        goto out;
    }
    /* lcs[i][j]: the longest common subsequence of a[i..] and b[j..]. */
    for (size_t i = a.n; small && i-- > 0;) {
        for (size_t j = b.n; j-- > 0;) {
            unsigned down = lcs[(i + 1) * w + j], right = lcs[i * w + j + 1];
            lcs[i * w + j] = same_line(&a, i, &b, j) ? lcs[(i + 1) * w + j + 1] + 1
                                                     : (down >= right ? down : right);
        }
    }
    size_t i = 0, j = 0;
    while (i < a.n || j < b.n) {
        if (small && i < a.n && j < b.n && same_line(&a, i, &b, j)) {
            steps[n++] = (struct diff_step){DIFF_EQUAL, i++, j++};
        } else if (i < a.n && (j == b.n || !small || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
            steps[n++] = (struct diff_step){DIFF_DELETE, i++, j};
        } else {
            steps[n++] = (struct diff_step){DIFF_INSERT, i, j++};
        }
    }
    bool header = false;
    size_t k = 0;
    while (k < n) {
        if (steps[k].op == DIFF_EQUAL) {
            k++;
            continue;
        }
        size_t start = k > DIFF_CONTEXT ? k - DIFF_CONTEXT : 0;
        size_t last = k, s = k;
        while (s < n) {
            if (steps[s].op != DIFF_EQUAL) {
                last = s++;
                continue;
            }
            size_t run = s;
            while (run < n && steps[run].op == DIFF_EQUAL) {
                run++;
            }
            if (run == n || run - s > 2 * DIFF_CONTEXT) {
                break;
            }
            s = run;
        }
        size_t end = last + 1 + DIFF_CONTEXT < n ? last + 1 + DIFF_CONTEXT : n;
        size_t a_len = 0, b_len = 0;
        for (size_t t = start; t < end; t++) {
            a_len += steps[t].op != DIFF_INSERT;
            b_len += steps[t].op != DIFF_DELETE;
        }
        if (!header) {
            fprintf(f, "--- %s\n+++ %s\n", label_before, label_after);
            header = true;
        }
        fputs("@@ -", f);
        print_range(f, steps[start].a, a_len);
        fputs(" +", f);
        print_range(f, steps[start].b, b_len);
        fputs(" @@\n", f);
        for (size_t t = start; t < end; t++) {
            const struct diff_step *st = &steps[t];
            if (st->op == DIFF_INSERT) {
                fprintf(f, "+%.*s\n", (int)b.len[st->b], b.at[st->b]);
            } else {
                fprintf(f, "%c%.*s\n", st->op == DIFF_EQUAL ? ' ' : '-', (int)a.len[st->a],
                        a.at[st->a]);
            }
        }
        k = end;
    }
    rc = 0;
out:
    free(a.at);
    free(a.len);
    free(b.at);
    free(b.len);
    free(steps);
    free(lcs);
    return rc;
}

int cfgdoc_max_lag(const json_t *v, bool *set, uint64_t *lag, char *errmsg)
{
    /* Bytes, as Patroni's; null removes the limit. */
    if (json_is_null(v)) {
        *set = false;
        *lag = 0;
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= CFGDOC_MAX_LAG_MAX) {
        *set = true;
        *lag = (uint64_t)json_integer_value(v);
        return 0;
    }
    return rpg_err(errmsg, RPG_EINVAL,
                   "maximum_lag_on_failover: expected a number of bytes 0..%lld, or null (no "
                   "limit)",
                   (long long)CFGDOC_MAX_LAG_MAX);
}

/* raftpg has no loop, leader key or store retries these could set (cfgdoc.h). */
const char *cfgdoc_interval_refusal(const char *key)
{
    if (strcmp(key, "loop_wait") == 0) {
        return "loop_wait: not settable: raftpg has no loop to slow down: each agent decides every "
               "100 ms and on every change; its timing is raft.election_timeout and "
               "raft.heartbeat_timeout in each member's file";
    }
    if (strcmp(key, "ttl") == 0) {
        return "ttl: not settable: raftpg has no leader key with a time to live: the primary's "
               "lease is Raft leadership, which ends after raft.election_timeout (each member's "
               "file)";
    }
    if (strcmp(key, "retry_timeout") == 0) {
        return "retry_timeout: not settable: raftpg retries no store: a primary that loses its "
               "Raft lease (raft.election_timeout in each member's file) is fenced at once";
    }
    return NULL;
}
