/* Unit tests of the configuration reload (reload.h): what a reload applies, what it names as
 * needing a restart of the agent, and that each structure keeps owning what it points to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/conf.h"
#include "raftpg/reload.h"

#define BASE                                                                                       \
    "scope: demo\n"                                                                                \
    "name: node1\n"                                                                                \
    "raft:\n"                                                                                      \
    "  data_dir: /var/lib/raftpg/node1\n"                                                          \
    "  members:\n"                                                                                 \
    "    - {name: node1, raft: \"127.0.0.1:7001\", api: \"127.0.0.1:8001\"}\n"

static void load(struct conf *c, const char *text)
{
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_load_string("t.yaml", text, c, errmsg) != 0) {
        fail_msg("load: %s", errmsg);
    }
}

static void test_same_file_changes_nothing(void **state)
{
    (void)state;
    struct conf cur, next;
    char applied[256], restart[256];
    load(&cur, BASE "tags: {datacenter: west}\n");
    load(&next, BASE "tags: {datacenter: west}\n");
    reload_apply(&cur, &next, applied, sizeof applied, restart, sizeof restart);
    assert_string_equal(applied, "");
    assert_string_equal(restart, "");
    conf_free(&cur);
    conf_free(&next);
}

static void test_tags_log_and_callbacks_apply_the_rest_waits(void **state)
{
    (void)state;
    struct conf cur, next;
    char applied[256], restart[256];
    load(&cur, BASE "tags: {datacenter: west}\n"
                    "restapi: {listen: \"127.0.0.1:8001\"}\n");
    load(&next, "scope: demo\n"
                "name: node1\n"
                "raft:\n"
                "  data_dir: /var/lib/raftpg/node1\n"
                "  election_timeout: 900\n"
                "  members:\n"
                "    - {name: node1, raft: \"127.0.0.1:7001\", api: \"127.0.0.1:8001\"}\n"
                "    - {name: node2, raft: \"127.0.0.1:7002\", api: \"127.0.0.1:8002\"}\n"
                "restapi: {listen: \"127.0.0.1:8001\", request_timeout: 9}\n"
                "log: {level: debug}\n"
                "tags: {datacenter: east, nofailover: true, rack: 4}\n");
    reload_apply(&cur, &next, applied, sizeof applied, restart, sizeof restart);
    assert_string_equal(applied, "tags, log.level");
    assert_string_equal(restart, "raft.election_timeout, raft.members, restapi");
    assert_true(cur.tags.nofailover);
    assert_int_equal(cur.tags.n_user, 2);
    assert_string_equal(cur.tags.user[0].value, "east");
    assert_int_equal(cur.log.level, CONF_LOG_DEBUG);
    /* Not applied: the running values stay. */
    assert_int_equal(cur.raft.election_timeout_ms, 500);
    assert_int_equal(cur.raft.n_members, 1);
    /* next holds the old tags now: freeing both frees each array once (ASan checks). */
    assert_int_equal(next.tags.n_user, 1);
    assert_string_equal(next.tags.user[0].value, "west");
    conf_free(&cur);
    conf_free(&next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_file_changes_nothing),
        cmocka_unit_test(test_tags_log_and_callbacks_apply_the_rest_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
