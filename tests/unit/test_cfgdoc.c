/* The dynamic configuration as edited (cfgdoc.h): YAML read back with the core schema, errors
 * with line and column, show-config's text, Patroni's merge and the unified diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "raftpg/cfgdoc.h"
#include "raftpg/err.h"

static json_t *parse_ok(const char *text)
{
    json_t *doc = NULL;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = cfgdoc_parse(text, strlen(text), "t.yaml", &doc, errmsg);
    if (rc != 0) {
        fail_msg("\"%s\": rc=%d (%s)", text, rc, errmsg);
    }
    return doc;
}

static void parse_fails(const char *text, const char *want)
{
    json_t *doc = NULL;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = cfgdoc_parse(text, strlen(text), "t.yaml", &doc, errmsg);
    if (rc != RPG_EINVAL || doc != NULL || strcmp(errmsg, want) != 0) {
        fail_msg("\"%s\": rc=%d errmsg \"%s\", want \"%s\"", text, rc, errmsg, want);
    }
}

static void eq_json(json_t *doc, const char *want)
{
    char *got = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *w = json_loads(want, 0, NULL);
    char *wants = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
    if (got == NULL || wants == NULL || strcmp(got, wants) != 0) {
        fail_msg("got %s, want %s", got, wants);
    }
    free(got);
    free(wants);
    json_decref(w);
}

static void test_cfgdoc_parse_types_by_core_schema(void **state)
{
    (void)state;
    json_t *d = parse_ok("synchronous_mode: quorum\n"
                         "synchronous_node_count: 2\n"
                         "synchronous_commit: on\n"
                         "postgresql:\n"
                         "  parameters:\n"
                         "    work_mem: 8MB\n"
                         "    checkpoint_completion_target: 0.9\n"
                         "    hot_standby: true\n"
                         "    quoted: '12'\n"
                         "    gone: ~\n"
                         "    empty:\n"
                         "  pg_hba:\n"
                         "  - 'host all all 127.0.0.1/32 trust' # a comment\n");
    eq_json(d, "{\"synchronous_mode\":\"quorum\",\"synchronous_node_count\":2,"
               "\"synchronous_commit\":\"on\",\"postgresql\":{\"parameters\":{"
               "\"work_mem\":\"8MB\",\"checkpoint_completion_target\":\"0.9\","
               "\"hot_standby\":true,\"quoted\":\"12\",\"gone\":null,\"empty\":null},"
               "\"pg_hba\":[\"host all all 127.0.0.1/32 trust\"]}}");
    json_decref(d);
    d = parse_ok(
        "{\"synchronous_node_count\": 3, \"postgresql\": {\"parameters\": {\"a\": \"x\"}}}");
    eq_json(d, "{\"synchronous_node_count\":3,\"postgresql\":{\"parameters\":{\"a\":\"x\"}}}");
    json_decref(d);
}

static void test_cfgdoc_parse_errors_name_line_and_column(void **state)
{
    (void)state;
    parse_fails("a: 1\nb: [1, 2\n", "t.yaml:3:1: did not find expected ',' or ']' while parsing a "
                                    "flow sequence");
    parse_fails("a: 1\n  b: 2\n", "t.yaml:2:4: mapping values are not allowed in this context");
    parse_fails("a: 1\na: 2\n", "t.yaml:2:1: duplicate key \"a\"");
    parse_fails("- a\n- b\n", "t.yaml:1:1: expected a mapping (key: value lines) at the top");
    parse_fails("", "t.yaml:1:1: empty document (expected key: value lines)");
    parse_fails("a: &x 1\nb: *x\n", "t.yaml:2:4: aliases (*name) are not supported");
    parse_fails("a: 1\n---\nb: 2\n", "t.yaml:2:1: expected one document, found another (---)");
}

static void test_cfgdoc_print_is_show_config(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"synchronous_mode\":\"quorum\",\"synchronous_node_count\":1,"
                           "\"synchronous_commit\":\"on\",\"recorded\":true,\"pause\":false,"
                           "\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\",\"x.y\":\"on\","
                           "\"max_connections\":\"100\"},\"pg_hba\":[\"local all all trust\"]}}",
                           0, NULL);
    char *text = cfgdoc_format(d);
    assert_string_equal(text, "synchronous_mode: quorum\n"
                              "synchronous_node_count: 1\n"
                              "synchronous_commit: on\n"
                              "postgresql:\n"
                              "  parameters:\n"
                              "    work_mem: 8MB\n"
                              "    x.y: 'on'\n"
                              "    max_connections: 100\n"
                              "  pg_hba:\n"
                              "  - 'local all all trust'\n");
    /* Read back and printed again: the same text. */
    json_t *back = parse_ok(text);
    char *again = cfgdoc_format(back);
    assert_string_equal(again, text);
    free(text);
    free(again);
    json_decref(back);
    json_decref(d);
    d = json_loads("{\"synchronous_mode\":\"quorum\",\"postgresql\":{\"parameters\":{}}}", 0, NULL);
    text = cfgdoc_format(d);
    assert_string_equal(text, "synchronous_mode: quorum\n");
    free(text);
    json_decref(d);
}

static void test_cfgdoc_merge_is_patronis_patch_config(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"a\":1,\"postgresql\":{\"parameters\":{\"x\":\"1\",\"y\":\"2\"},"
                           "\"pg_hba\":[\"a\"]}}",
                           0, NULL);
    json_t *p = json_loads("{\"a\":null,\"b\":2,\"postgresql\":{\"parameters\":{\"x\":null,"
                           "\"z\":\"3\"},\"pg_hba\":[\"b\",\"c\"]}}",
                           0, NULL);
    cfgdoc_merge(d, p);
    eq_json(d, "{\"b\":2,\"postgresql\":{\"parameters\":{\"y\":\"2\",\"z\":\"3\"},"
               "\"pg_hba\":[\"b\",\"c\"]}}");
    json_decref(d);
    json_decref(p);
}

static char *diff_of(const char *a, const char *b)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    assert_int_equal(cfgdoc_diff(f, a, b, "current", "new"), 0);
    fclose(f);
    return buf;
}

static void test_cfgdoc_diff_is_unified_with_three_lines_of_context(void **state)
{
    (void)state;
    char *d = diff_of("a\nb\nc\n", "a\nb\nc\n");
    assert_string_equal(d, "");
    free(d);
    d = diff_of("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
                "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\nsixteen\n");
    assert_string_equal(d, "--- current\n+++ new\n"
                           "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
                           "@@ -13,3 +13,4 @@\n 13\n 14\n 15\n+sixteen\n");
    free(d);
    /* Changes six lines apart or closer share a hunk. */
    d = diff_of("a\n1\n2\n3\n4\n5\n6\nb\n", "A\n1\n2\n3\n4\n5\n6\nB\n");
    assert_string_equal(d, "--- current\n+++ new\n"
                           "@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n");
    free(d);
    d = diff_of("", "x: 1\n");
    assert_string_equal(d, "--- current\n+++ new\n@@ -0,0 +1 @@\n+x: 1\n");
    free(d);
}

/* maximum_lag_on_failover: bytes or null; anything else is refused naming the key. */
static void test_cfgdoc_max_lag(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    bool set = false;
    uint64_t lag = 7;
    json_t *v = json_integer(1048576);
    assert_int_equal(cfgdoc_max_lag(v, &set, &lag, errmsg), 0);
    assert_true(set);
    assert_int_equal(lag, 1048576);
    json_decref(v);
    v = json_integer(0);
    assert_int_equal(cfgdoc_max_lag(v, &set, &lag, errmsg), 0);
    assert_true(set);
    assert_int_equal(lag, 0);
    json_decref(v);
    v = json_null();
    assert_int_equal(cfgdoc_max_lag(v, &set, &lag, errmsg), 0);
    assert_false(set);
    json_t *bad[] = {json_integer(-1),   json_integer(CFGDOC_MAX_LAG_MAX + 1),
                     json_string("1MB"), json_real(1.5),
                     json_true(),        json_array()};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set = true;
        assert_int_equal(cfgdoc_max_lag(bad[i], &set, &lag, errmsg), RPG_EINVAL);
        assert_string_equal(errmsg, "maximum_lag_on_failover: expected a number of bytes "
                                    "0..4611686018427387904, or null (no limit)");
        json_decref(bad[i]);
    }
}

static void test_cfgdoc_interval_keys_refused(void **state)
{
    (void)state;
    const char *keys[] = {"loop_wait", "ttl", "retry_timeout"};
    for (size_t i = 0; i < 3; i++) {
        const char *why = cfgdoc_interval_refusal(keys[i]);
        assert_non_null(why);
        assert_int_equal(strncmp(why, keys[i], strlen(keys[i])), 0);
        assert_non_null(strstr(why, ": not settable: "));
        assert_non_null(strstr(why, "raft.election_timeout"));
    }
    assert_null(cfgdoc_interval_refusal("maximum_lag_on_failover"));
    assert_null(cfgdoc_interval_refusal("ttl2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfgdoc_parse_types_by_core_schema),
        cmocka_unit_test(test_cfgdoc_parse_errors_name_line_and_column),
        cmocka_unit_test(test_cfgdoc_print_is_show_config),
        cmocka_unit_test(test_cfgdoc_merge_is_patronis_patch_config),
        cmocka_unit_test(test_cfgdoc_diff_is_unified_with_three_lines_of_context),
        cmocka_unit_test(test_cfgdoc_max_lag),
        cmocka_unit_test(test_cfgdoc_interval_keys_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
