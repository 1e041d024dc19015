/* The dynamic configuration as an operator edits it (`ctl edit-config`): the YAML that
 * show-config prints, that YAML (or JSON) read back into the JSON document of GET/PATCH/PUT
 * /config, Patroni's merge of a partial document, and the unified diff shown before a change.
 * Pure: no I/O besides the FILE a caller passes. */
#ifndef RAFTPG_CFGDOC_H
#define RAFTPG_CFGDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Reads a YAML document (JSON is YAML too) whose top is a mapping into a JSON object. Scalars
 * follow the YAML 1.2 core schema: a plain null, ~ or nothing is null, true/false (any case as
 * the schema spells them) a boolean, an integer an integer; every other scalar, and any quoted
 * one, is a string (so on, off and 0.9 stay as written). Duplicate keys, aliases and
 * non-scalar keys are refused. Returns 0 with *out (the caller's reference), or RPG_EINVAL with
 * errmsg "WHERE:LINE:COLUMN: problem" (1-based, as editors count). where: borrowed. */
int cfgdoc_parse(const char *text, size_t len, const char *where, json_t **out, char *errmsg);

/* Prints the document as `ctl show-config` does: the synchronous settings, then postgresql's
 * parameters and pg_hba lines, then any other key (pause and recorded, which GET /config
 * reports but nobody edits here, are left out). */
void cfgdoc_print(FILE *f, json_t *doc);

/* The same, into a string (the caller frees it); NULL when out of memory. */
char *cfgdoc_format(json_t *doc);

/* Patroni's patch_config: each key of patch replaces dst's, except that two objects merge key by
 * key and null removes the key. dst: modified; patch: borrowed. */
void cfgdoc_merge(json_t *dst, json_t *patch);

/* Writes a unified diff (three lines of context, "--- " and "+++ " labels as given) from before
 * to after, compared line by line; nothing when they are equal. Returns 0, or RPG_ENOMEM. */
int cfgdoc_diff(FILE *f, const char *before, const char *after, const char *label_before,
                const char *label_after);

/* The largest maximum_lag_on_failover taken: 2^62 bytes, past any WAL a cluster writes. */
#define CFGDOC_MAX_LAG_MAX ((json_int_t)1 << 62)

/* maximum_lag_on_failover as PATCH or PUT /config carry it: a number of bytes
 * 0..CFGDOC_MAX_LAG_MAX (*set true), or null (no limit, *set false). Returns 0, or RPG_EINVAL
 * with errmsg naming the key. */
int cfgdoc_max_lag(const json_t *v, bool *set, uint64_t *lag, char *errmsg);

/* Patroni's interval keys (loop_wait, ttl, retry_timeout), which raftpg refuses: the reason,
 * naming the key and what stands in its place; NULL for any other key. */
const char *cfgdoc_interval_refusal(const char *key);

#endif
