/* What ctl prints about the cluster without changing it: list (the member table), topology,
 * version, history and show-config, with list's and topology's --watch loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "ctl_int.h"
#include "raftpg/cfgdoc.h"

/* The lines above the member table: cluster, leader, primary, synchronous set, maintenance. */
static void print_summary(json_t *cluster)
{
    json_t *raft = json_object_get(cluster, "raft");
    printf("Cluster: %s (term %lld, leader %s, commit index %lld, answered by %s)\n",
           ctl_str_or(cluster, "scope", "?"),
           (long long)json_integer_value(json_object_get(raft, "term")),
           ctl_str_or(raft, "leader", "none"),
           (long long)json_integer_value(json_object_get(raft, "commit_index")),
           ctl_str_or(raft, "member", "?"));
    json_t *primary = json_object_get(cluster, "primary");
    json_t *sync = json_object_get(cluster, "sync");
    if (json_object_get(cluster, "system_id") != NULL) {
        printf("PostgreSQL: system %s, primary %s (term %lld, timeline %lld)\n",
               ctl_str_or(cluster, "system_id", "?"), ctl_str_or(primary, "name", "none"),
               (long long)json_integer_value(json_object_get(primary, "term")),
               (long long)json_integer_value(json_object_get(primary, "timeline")));
    }
    if (json_is_true(json_object_get(cluster, "pause"))) {
        printf("Maintenance mode: on\n");
    }
    /* patronictl's lines for a scheduled switchover. */
    json_t *sched = json_object_get(cluster, "scheduled_switchover");
    if (json_is_object(sched)) {
        printf("Switchover scheduled at: %s\n", ctl_str_or(sched, "at", "?"));
        if (json_object_get(sched, "from") != NULL) {
            printf("%24s: %s\n", "from", ctl_str_or(sched, "from", "?"));
        }
        if (json_object_get(sched, "to") != NULL) {
            printf("%24s: %s\n", "to", ctl_str_or(sched, "to", "?"));
        }
    }
    if (json_is_object(sync)) {
        json_t *voters = json_object_get(sync, "voters");
        long long k = (long long)json_integer_value(json_object_get(sync, "k"));
        printf("Synchronous: mode %s, node count %lld, commit %s: ", ctl_str_or(sync, "mode", "?"),
               (long long)json_integer_value(json_object_get(sync, "wanted")),
               ctl_str_or(sync, "commit", "?"));
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

enum list_format { LIST_PRETTY, LIST_JSON, LIST_YAML, LIST_TSV };

/* Written plain only when no YAML reader can take it for anything but a string: a word that
 * starts with a letter, of letters, digits, '_', '.' and '-', and is not one of YAML 1.1's null
 * and boolean words. Anything else (times, addresses, numbers in text) is quoted. */
static bool yaml_needs_quotes(const char *s)
{
    static const char *const special[] = {"null",  "Null",  "NULL", "true", "True", "TRUE", "false",
                                          "False", "FALSE", "yes",  "Yes",  "YES",  "no",   "No",
                                          "NO",    "on",    "On",   "ON",   "off",  "Off",  "OFF",
                                          "y",     "Y",     "n",    "N"};
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return true;
    }
    for (const char *p = s; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-';
        if (!ok) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (strcmp(s, special[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int yaml_scalar(yaml_emitter_t *em, const char *text, bool is_string)
{
    yaml_event_t ev;
    bool plain = !is_string || !yaml_needs_quotes(text);
    if (!yaml_scalar_event_initialize(
            &ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), plain, !plain,
            plain ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
        return -1;
    }
    return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int yaml_value(yaml_emitter_t *em, json_t *v)
{
    yaml_event_t ev;
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev)) {
            return -1;
        }
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item) {
            if (yaml_scalar(em, key, true) != 0 || yaml_value(em, item) != 0) {
                return -1;
            }
        }
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev) ? 0 : -1;
    }
    case JSON_ARRAY: {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev)) {
            return -1;
        }
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (yaml_value(em, item) != 0) {
                return -1;
            }
        }
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev) ? 0 : -1;
    }
    case JSON_STRING: return yaml_scalar(em, json_string_value(v), true);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return yaml_scalar(em, num, false);
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        return yaml_scalar(em, num, false);
    case JSON_TRUE: return yaml_scalar(em, "true", false);
    case JSON_FALSE: return yaml_scalar(em, "false", false);
    case JSON_NULL: return yaml_scalar(em, "null", false);
    }
    return -1;
}

/* The document as YAML (patronictl's -f yaml), from the same JSON the json format prints. */
static int print_yaml(json_t *doc)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em)) {
        return -1;
    }
    yaml_emitter_set_output_file(&em, stdout);
    yaml_emitter_set_unicode(&em, 1);
    int rv = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
                     yaml_emitter_emit(&em, &ev) &&
                     yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
                     yaml_emitter_emit(&em, &ev) && yaml_value(&em, doc) == 0 &&
                     yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
                     yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev)
                 ? 0
                 : -1;
    yaml_emitter_delete(&em);
    return rv;
}

/* --format's value (patronictl's -f); 0, or -1 after saying what is wrong. */
static int parse_format(const char *cmd, const char *f, enum list_format *format)
{
    static const char *const names[] = {
        [LIST_PRETTY] = "pretty", [LIST_JSON] = "json", [LIST_YAML] = "yaml", [LIST_TSV] = "tsv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(f, names[i]) == 0) {
            *format = (enum list_format)i;
            return 0;
        }
    }
    fprintf(stderr, "raftpg ctl %s: --format: expected pretty, json, yaml or tsv, got \"%s\"\n",
            cmd, f);
    return -1;
}

static int cmd_list(struct ctl *c, enum list_format format)
{
    bool as_json = format == LIST_JSON;
    bool tsv = format == LIST_TSV;
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
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
    if (format == LIST_YAML) {
        int rv = print_yaml(cluster);
        json_decref(cluster);
        if (rv != 0) {
            fprintf(stderr, "raftpg ctl list: cannot write the document as YAML\n");
            return 1;
        }
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
        snprintf(cells[r][0], 80, "%s", ctl_str_or(m, "name", "?"));
        snprintf(cells[r][1], 80, "%lld", (long long)json_integer_value(json_object_get(m, "id")));
        json_t *port = json_object_get(m, "port");
        if (json_is_integer(port)) {
            snprintf(cells[r][2], 80, "%s:%lld", ctl_str_or(m, "host", ""),
                     (long long)json_integer_value(port));
        } else {
            snprintf(cells[r][2], 80, "%s", ctl_str_or(m, "host", ""));
        }
        snprintf(cells[r][3], 80, "%s", ctl_str_or(m, "role", ""));
        snprintf(cells[r][4], 80, "%s", ctl_str_or(m, "state", ""));
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
        snprintf(cells[r][7], 80, "%s", ctl_str_or(m, "voting", ""));
        snprintf(cells[r][8], 80, "%lld",
                 (long long)json_integer_value(json_object_get(m, "term")));
        snprintf(cells[r][9], 80, "%s", ctl_str_or(m, "raft_address", ""));
        snprintf(cells[r][10], 80, "%s", ctl_str_or(m, "raft_storage", ""));
        snprintf(cells[r][COL_PENDING], 80, "%s",
                 json_is_true(json_object_get(m, "pending_restart")) ? "*" : "");
        snprintf(cells[r][COL_SCHEDULED], 80, "%s",
                 ctl_str_or(json_object_get(m, "scheduled_restart"), "schedule", ""));
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
        const char *err = ctl_str_or(m, "raft_storage_error", "");
        if (err[0] != '\0') {
            printf("%s: raft storage %s: %s\n", ctl_str_or(m, "name", "?"),
                   ctl_str_or(m, "raft_storage", "?"), err);
        }
        /* A member whose PostgreSQL is rejoining: the pipeline's stage (a clone's progress). */
        const char *rejoin = ctl_str_or(m, "rejoin", "");
        if (rejoin[0] != '\0') {
            printf("%s: rejoining: %s\n", ctl_str_or(m, "name", "?"), rejoin);
        }
        const char *poll = ctl_str_or(m, "poll_error", "");
        if (poll[0] != '\0') {
            printf("%s: unreachable: %s\n", ctl_str_or(m, "name", "?"), poll);
        }
        const char *ident = ctl_str_or(m, "identity_error", "");
        if (ident[0] != '\0') {
            printf("%s: identity: %s\n", ctl_str_or(m, "name", "?"), ident);
        }
    }
    free(cells);
    json_decref(cluster);
    return 0;
}

/* patronictl version: this program's, then each member's as its /patroni document says. */
static int cmd_version(struct ctl *c)
{
    printf("raftpg ctl version %s\n", RAFTPG_VERSION);
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl version: %s\n", errmsg);
        return 1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        json_t *doc = ctl_member_get(c, m, "/patroni", errmsg);
        json_t *p = json_object_get(doc, "patroni");
        json_t *pg = json_object_get(doc, "server_version");
        if (p != NULL) {
            printf("%s: raftpg %s", ctl_str_or(m, "name", "?"), ctl_str_or(p, "version", "?"));
            if (json_is_integer(pg)) {
                long long v = (long long)json_integer_value(pg);
                printf(" PostgreSQL %lld.%lld", v / 10000, v % 10000);
            }
            printf("\n");
        } else {
            printf("%s: no answer (%s)\n", ctl_str_or(m, "name", "?"), errmsg);
        }
        json_decref(doc);
    }
    json_decref(cluster);
    return 0;
}

/* Who streams from whom: the primary, then the other members beneath it (raftpg runs no
 * cascading replication: every standby streams from the primary). One row per member in that
 * order, {name, upstream (null for the primary, or with none recorded), role, state, timeline,
 * lag}, the last two only when the cluster document has them; every format prints these rows. */
static json_t *topology_rows(json_t *cluster, const char *primary)
{
    json_t *rows = json_array();
    json_t *members = json_object_get(cluster, "members");
    for (int pass = 0; pass < 2; pass++) {
        size_t i;
        json_t *m;
        json_array_foreach(members, i, m) {
            const char *name = ctl_str_or(m, "name", "?");
            bool is_primary = primary[0] != '\0' && strcmp(name, primary) == 0;
            if (is_primary != (pass == 0)) {
                continue;
            }
            json_t *row =
                json_pack("{s:s, s:o, s:s, s:s}", "name", name, "upstream",
                          is_primary || primary[0] == '\0' ? json_null() : json_string(primary),
                          "role", ctl_str_or(m, "role", "?"), "state", ctl_str_or(m, "state", "?"));
            json_t *tl = json_object_get(m, "timeline");
            if (is_primary && json_is_integer(tl)) {
                json_object_set(row, "timeline", tl);
            }
            json_t *lag = json_object_get(m, "lag");
            if (!is_primary && lag != NULL) {
                json_object_set(row, "lag", lag);
            }
            json_array_append_new(rows, row);
        }
    }
    return rows;
}

static void print_topology_pretty(const char *scope, const char *primary, json_t *rows)
{
    printf("Cluster: %s\n", scope);
    if (primary[0] == '\0') {
        printf("(no primary recorded)\n");
    }
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        if (primary[0] != '\0' && strcmp(ctl_str_or(r, "name", ""), primary) == 0) {
            printf("%s  [%s, %s, timeline %lld]\n", primary, ctl_str_or(r, "role", "?"),
                   ctl_str_or(r, "state", "?"),
                   (long long)json_integer_value(json_object_get(r, "timeline")));
            continue;
        }
        json_t *lag = json_object_get(r, "lag");
        printf("+ %s  [%s, %s", ctl_str_or(r, "name", "?"), ctl_str_or(r, "role", "?"),
               ctl_str_or(r, "state", "?"));
        if (json_is_integer(lag)) {
            printf(", lag %lld bytes", (long long)json_integer_value(lag));
        }
        printf("]\n");
    }
}

/* Tab-separated, a header row then one row per member: for scripts, as list's. */
static void print_topology_tsv(json_t *rows)
{
    printf("Member\tUpstream\tRole\tState\tTL\tLag\n");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        json_t *tl = json_object_get(r, "timeline");
        json_t *lag = json_object_get(r, "lag");
        printf("%s\t%s\t%s\t%s\t", ctl_str_or(r, "name", "?"), ctl_str_or(r, "upstream", ""),
               ctl_str_or(r, "role", "?"), ctl_str_or(r, "state", "?"));
        if (json_is_integer(tl)) {
            printf("%lld", (long long)json_integer_value(tl));
        }
        printf("\t");
        if (json_is_integer(lag)) {
            printf("%lld", (long long)json_integer_value(lag));
        } else if (lag != NULL) {
            printf("unknown");
        }
        printf("\n");
    }
}

static int cmd_topology(struct ctl *c, enum list_format format)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl topology: %s\n", errmsg);
        return 1;
    }
    const char *scope = ctl_str_or(cluster, "scope", "?");
    const char *primary = ctl_str_or(json_object_get(cluster, "primary"), "name", "");
    json_t *rows = topology_rows(cluster, primary);
    int rv = 0;
    if (format == LIST_JSON || format == LIST_YAML) {
        json_t *o = json_pack("{s:s, s:o, s:O}", "scope", scope, "primary",
                              primary[0] != '\0' ? json_string(primary) : json_null(), "members",
                              rows);
        if (format == LIST_YAML) {
            if (print_yaml(o) != 0) {
                fprintf(stderr, "raftpg ctl topology: cannot write the document as YAML\n");
                rv = 1;
            }
        } else {
            char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", text != NULL ? text : "{}");
            free(text);
        }
        json_decref(o);
    } else if (format == LIST_TSV) {
        print_topology_tsv(rows);
    } else {
        print_topology_pretty(scope, primary, rows);
    }
    json_decref(rows);
    json_decref(cluster);
    return rv;
}

/* patronictl history: GET /history from the first member that answers, as a table. */
static const char *history_text(json_t *e, size_t i)
{
    const char *s = json_string_value(json_array_get(e, i));
    return s != NULL ? s : "?";
}

/* patronictl's history: json, yaml and tsv hold one object (a row) per entry, with its column
 * names and the LSN as a number; pretty shows the LSN as PostgreSQL writes it. */
static int cmd_history(struct ctl *c, enum list_format format)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *o = ctl_get_first(c, "/history", JSON_ARRAY, errmsg);
    if (o == NULL) {
        fprintf(stderr, "raftpg ctl history: no member answered: %s\n", errmsg);
        return 1;
    }
    static const char *const columns[] = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};
    int rv = 0;
    size_t k;
    json_t *e;
    if (format == LIST_JSON || format == LIST_YAML) {
        json_t *rows = json_array();
        json_array_foreach(o, k, e) {
            json_t *row = json_object();
            for (size_t i = 0; i < 5; i++) {
                json_t *v = json_array_get(e, i);
                json_object_set(row, columns[i], v != NULL ? v : json_null());
            }
            json_array_append_new(rows, row);
        }
        if (format == LIST_YAML) {
            rv = print_yaml(rows) != 0 ? 1 : 0;
        } else {
            char *out = json_dumps(rows, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", out != NULL ? out : "[]");
            free(out);
        }
        json_decref(rows);
        json_decref(o);
        if (rv != 0) {
            fprintf(stderr, "raftpg ctl history: cannot write YAML\n");
        }
        return rv;
    }
    if (format == LIST_TSV) {
        printf("TL\tLSN\tReason\tTimestamp\tNew Leader\n");
    } else {
        printf("%-4s %-19s %-12s %-29s %s\n", "TL", "LSN", "Reason", "Timestamp", "New Leader");
    }
    json_array_foreach(o, k, e) {
        long long tl = (long long)json_integer_value(json_array_get(e, 0));
        uint64_t lsn = (uint64_t)json_integer_value(json_array_get(e, 1));
        if (format == LIST_TSV) {
            printf("%lld\t%llu\t%s\t%s\t%s\n", tl, (unsigned long long)lsn, history_text(e, 2),
                   history_text(e, 3), history_text(e, 4));
            continue;
        }
        char lsn_text[40];
        snprintf(lsn_text, sizeof lsn_text, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
        printf("%-4lld %-19s %-12s %-29s %s\n", tl, lsn_text, history_text(e, 2),
               history_text(e, 3), history_text(e, 4));
    }
    json_decref(o);
    return 0;
}

static int cmd_show_config(struct ctl *c)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *o = ctl_get_first(c, "/config", JSON_OBJECT, errmsg);
    if (o == NULL) {
        fprintf(stderr, "raftpg ctl show-config: no member answered: %s\n", errmsg);
        return 1;
    }
    cfgdoc_print(stdout, o);
    json_decref(o);
    return 0;
}

/* list and topology: --format, --json, --watch. */
static int run_watch(struct ctl *c, const char *cmd, bool topo, int argc, char **argv)
{
    enum list_format format = LIST_PRETTY;
    double watch = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            format = LIST_JSON;
        } else if ((strcmp(argv[i], "--format") == 0 || strcmp(argv[i], "-f") == 0) &&
                   i + 1 < argc) {
            if (parse_format(cmd, argv[++i], &format) != 0) {
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
    for (;;) {
        int rv = topo ? cmd_topology(c, format) : cmd_list(c, format);
        if (watch == 0) {
            return rv;
        }
        fflush(stdout);
        ctl_sleep_ms((unsigned)(watch * 1000));
        printf("\n");
    }
}

int ctl_run_list(struct ctl *c, int argc, char **argv)
{
    return run_watch(c, "list", false, argc, argv);
}

int ctl_run_topology(struct ctl *c, int argc, char **argv)
{
    return run_watch(c, "topology", true, argc, argv);
}

/* Commands that take no argument. */
static int no_args(const char *cmd, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "raftpg ctl %s: unexpected argument \"%s\"\n", cmd, argv[0]);
        return 2;
    }
    return 0;
}

int ctl_run_version(struct ctl *c, int argc, char **argv)
{
    return no_args("version", argc, argv) != 0 ? 2 : cmd_version(c);
}

int ctl_run_show_config(struct ctl *c, int argc, char **argv)
{
    return no_args("show-config", argc, argv) != 0 ? 2 : cmd_show_config(c);
}

int ctl_run_history(struct ctl *c, int argc, char **argv)
{
    enum list_format format = LIST_PRETTY;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            format = LIST_JSON;
        } else if ((strcmp(argv[i], "--format") == 0 || strcmp(argv[i], "-f") == 0) &&
                   i + 1 < argc) {
            if (parse_format("history", argv[++i], &format) != 0) {
                return 2;
            }
        } else {
            fprintf(stderr,
                    "raftpg ctl history: unexpected argument \"%s\" (--format "
                    "pretty|json|yaml|tsv)\n",
                    argv[i]);
            return 2;
        }
    }
    return cmd_history(c, format);
}
