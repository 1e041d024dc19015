/* Health-check answers (health.h). */
#include "raftpg/health.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "raftpg/err.h"

/* Patroni's health-check paths, the aliases each on its own row. */
static const struct {
    const char *path;
    enum health_kind kind;
} health_paths[] = {
    {"/", HEALTH_PRIMARY},
    {"/primary", HEALTH_PRIMARY},
    {"/master", HEALTH_PRIMARY},
    {"/read-write", HEALTH_PRIMARY},
    {"/leader", HEALTH_LEADER},
    {"/standby-leader", HEALTH_STANDBY_LEADER},
    {"/standby_leader", HEALTH_STANDBY_LEADER},
    {"/replica", HEALTH_REPLICA},
    {"/read-only", HEALTH_READ_ONLY},
    {"/sync", HEALTH_SYNC},
    {"/synchronous", HEALTH_SYNC},
    {"/read-only-sync", HEALTH_READ_ONLY_SYNC},
    {"/read-only-synchronous", HEALTH_READ_ONLY_SYNC},
    {"/quorum", HEALTH_QUORUM},
    {"/read-only-quorum", HEALTH_READ_ONLY_QUORUM},
    {"/async", HEALTH_ASYNC},
    {"/asynchronous", HEALTH_ASYNC},
    {"/health", HEALTH_HEALTH},
    {"/readiness", HEALTH_READINESS},
    {"/liveness", HEALTH_LIVENESS},
};

enum health_kind health_kind_of(const char *path)
{
    for (size_t i = 0; i < sizeof health_paths / sizeof health_paths[0]; i++) {
        if (strcmp(path, health_paths[i].path) == 0) {
            return health_paths[i].kind;
        }
    }
    return HEALTH_NONE;
}

const char *health_path(unsigned i)
{
    return i < sizeof health_paths / sizeof health_paths[0] ? health_paths[i].path : NULL;
}

const char *health_replication_state(bool streaming, bool restore_command)
{
    return streaming ? "streaming" : restore_command ? "in archive recovery" : NULL;
}

int health_parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"", 0}, {"B", 0}, {"kB", 10}, {"MB", 20}, {"GB", 30}, {"TB", 40}};
    const char *p = text;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p)) {
        return RPG_EINVAL;
    }
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return RPG_EINVAL;
        }
        v = v * 10 + d;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        /* Units as PostgreSQL spells them; the case of a user's "mb" is forgiven. */
        if (strcasecmp(p, units[i].unit) != 0) {
            continue;
        }
        if (units[i].shift > 0 && v > (UINT64_MAX >> units[i].shift)) {
            return RPG_EINVAL;
        }
        *out = v << units[i].shift;
        return 0;
    }
    return RPG_EINVAL;
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent- and plus-decodes [s, s + n) into out; false if malformed or too long. */
static bool decode(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) {
                return false;
            }
            int h = hex(s[i + 1]), l = hex(s[i + 2]);
            if (h < 0 || l < 0) {
                return false;
            }
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= size) {
            return false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

int health_parse_query(const char *query, struct health_query *q, char *errmsg, size_t size)
{
    memset(q, 0, sizeof *q);
    const char *p = query != NULL ? query : "";
    while (*p != '\0') {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        char key[HEALTH_TAG_MAX + 8], value[HEALTH_TAG_MAX];
        size_t klen = eq != NULL ? (size_t)(eq - p) : len;
        if (len == 0) {
            p++;
            continue;
        }
        if (!decode(p, klen, key, sizeof key)) {
            snprintf(errmsg, size, "query: a parameter name is malformed or too long");
            return RPG_EINVAL;
        }
        if (eq == NULL || !decode(eq + 1, len - klen - 1, value, sizeof value)) {
            snprintf(errmsg, size, "query parameter %s: expected %s=<value> (at most %d bytes)",
                     key, key, HEALTH_TAG_MAX - 1);
            return RPG_EINVAL;
        }
        if (strcmp(key, "lag") == 0) {
            if (health_parse_size(value, &q->lag) != 0) {
                snprintf(errmsg, size,
                         "query parameter lag=%s: expected bytes, or a number with kB, MB, GB or "
                         "TB (lag=16MB)",
                         value);
                return RPG_EINVAL;
            }
            q->has_lag = true;
        } else if (strcmp(key, "mode") == 0) {
            if (strcmp(value, "apply") != 0 && strcmp(value, "write") != 0) {
                snprintf(errmsg, size, "query parameter mode=%s: expected apply or write", value);
                return RPG_EINVAL;
            }
            q->lag_write = strcmp(value, "write") == 0;
        } else if (strcmp(key, "replication_state") == 0) {
            /* The states health_replication_state names; anything else could never match. */
            if (strcmp(value, "streaming") != 0 && strcmp(value, "in archive recovery") != 0) {
                snprintf(errmsg, size,
                         "query parameter replication_state=%s: expected streaming or in archive "
                         "recovery",
                         value);
                return RPG_EINVAL;
            }
            memcpy(q->replication_state, value, strlen(value) + 1);
        } else if (strncmp(key, "tag_", 4) == 0 && key[4] != '\0') {
            if (strlen(key + 4) >= HEALTH_TAG_MAX) {
                snprintf(errmsg, size, "query parameter %.32s...: tag name too long", key);
                return RPG_EINVAL;
            }
            if (q->n_tags == HEALTH_TAGS_MAX) {
                snprintf(errmsg, size, "query: more than %d tag_ parameters", HEALTH_TAGS_MAX);
                return RPG_EINVAL;
            }
            memcpy(q->tags[q->n_tags].key, key + 4, strlen(key + 4) + 1);
            snprintf(q->tags[q->n_tags].value, HEALTH_TAG_MAX, "%s", value);
            q->n_tags++;
        } else {
            snprintf(errmsg, size,
                     "unknown query parameter %s (lag, mode, replication_state or tag_<key>)", key);
            return RPG_EINVAL;
        }
        p += len;
        if (*p == '&') {
            p++;
        }
    }
    return 0;
}

static bool tags_match(const struct health_input *in, const struct health_query *q)
{
    for (unsigned i = 0; i < q->n_tags; i++) {
        bool found = false;
        for (unsigned j = 0; j < in->n_tags && !found; j++) {
            found = strcmp(in->tags[j].key, q->tags[i].key) == 0 &&
                    strcmp(in->tags[j].value, q->tags[i].value) == 0;
        }
        if (!found) {
            return false; /* a tag this member lacks, or another value */
        }
    }
    return true;
}

/* Bytes of WAL this standby lacks against the primary as last heard, or against what it has
 * received itself when that is further (the report is up to a poll old). */
static uint64_t lag_of(const struct health_input *in, bool write)
{
    uint64_t head = in->primary_position > in->received_position ? in->primary_position
                                                                 : in->received_position;
    uint64_t have = write ? in->received_position : in->replay_position;
    return head > have ? head - have : 0;
}

int health_status(enum health_kind kind, const struct health_input *in,
                  const struct health_query *q)
{
    if (kind == HEALTH_LIVENESS) {
        return in->alive ? 200 : 503; /* a member that does not act still runs */
    }
    if (!in->alive || !in->acting || in->storage_failing) {
        /* A member that does not act takes no traffic; /health still says whether its server
         * runs (/liveness, above, whether the agent does). One whose Raft storage fails cannot
         * be elected, commits nothing and, as leader, is handing leadership over while its lease
         * runs out: neither /leader nor /primary nor a read path may count on it. */
        return kind == HEALTH_HEALTH && in->alive && (!in->has_pg || in->running) ? 200 : 503;
    }
    bool primary = in->has_pg && in->running && !in->in_recovery && in->ready_leader;
    bool replica_state = in->has_pg && in->running && in->in_recovery;
    const char *state = health_replication_state(in->streaming, in->restore_command);
    bool replica = replica_state && !in->noloadbalance &&
                   (!q->has_lag || lag_of(in, false) <= q->lag) &&
                   (q->replication_state[0] == '\0' ||
                    (state != NULL && strcmp(q->replication_state, state) == 0));
    bool ok = false;
    bool tags_apply = true;
    switch (kind) {
    case HEALTH_NONE:
    case HEALTH_LIVENESS: return 503; /* answered above */
    case HEALTH_PRIMARY:
        ok = primary;
        tags_apply = false;
        break;
    case HEALTH_LEADER:
        ok = in->raft_leader;
        tags_apply = false;
        break;
    case HEALTH_STANDBY_LEADER:
        ok = false;
        tags_apply = false;
        break;
    case HEALTH_REPLICA: ok = replica; break;
    case HEALTH_READ_ONLY: ok = primary || replica; break;
    case HEALTH_SYNC: ok = replica && in->standby == HEALTH_STANDBY_SYNC; break;
    case HEALTH_READ_ONLY_SYNC:
        ok = primary || (replica && in->standby == HEALTH_STANDBY_SYNC);
        break;
    case HEALTH_QUORUM: ok = replica && in->standby == HEALTH_STANDBY_QUORUM; break;
    case HEALTH_READ_ONLY_QUORUM:
        ok = primary || (replica && in->standby == HEALTH_STANDBY_QUORUM);
        break;
    case HEALTH_ASYNC: ok = replica && in->standby == HEALTH_STANDBY_ASYNC; break;
    case HEALTH_HEALTH: ok = !in->has_pg || in->running; break;
    case HEALTH_READINESS: {
        uint64_t max = q->has_lag ? q->lag : in->default_lag;
        ok = !in->has_pg ? true
             : primary   ? true
                         : replica_state && in->streaming && lag_of(in, q->lag_write) <= max;
        tags_apply = false;
        break;
    }
    }
    if (ok && tags_apply && !tags_match(in, q)) {
        ok = false;
    }
    return ok ? 200 : 503;
}
