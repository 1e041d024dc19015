/* Unit tests for conf: every key type, every error kind with its exact message, the shipped
 * example files, and robustness against truncated and mutated input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raftpg/conf.h"
#include "raftpg/fsm.h"

/* struct conf holds several PATH_MAX buffers; one static instance keeps test frames small. */
static struct conf c;
static char errmsg[RPG_ERRMSG_SIZE];

/* Lines 1-4 of most test files; a test adds raft keys after them, then MEMBERS. */
#define HEAD                                                                                       \
    "scope: demo\n"                                                                                \
    "name: node1\n"                                                                                \
    "raft:\n"                                                                                      \
    "  data_dir: /var/lib/raftpg/node1\n"

/* Four lines: one member, node1. */
#define MEMBERS                                                                                    \
    "  members:\n"                                                                                 \
    "    - name: node1\n"                                                                          \
    "      raft: 127.0.0.1:7001\n"                                                                 \
    "      api: 127.0.0.1:8001\n"

/* Eight lines: the smallest valid file. */
#define MINIMAL HEAD MEMBERS

static const char full[] =
    "scope: prod-1\n"
    "name: node2\n"
    "raft:\n"
    "  listen: 10.0.0.2:7001\n"
    "  data_dir: /var/lib/raftpg/node2\n"
    "  election_timeout: 1000\n"
    "  heartbeat_timeout: 150\n"
    "  pre_vote: false\n"
    "  members:\n"
    "    - name: node1\n"
    "      raft: 10.0.0.1:7001\n"
    "      api: 10.0.0.1:8008\n"
    "    - {name: node2, raft: 10.0.0.2:7001, api: 10.0.0.2:8008}\n"
    "    - name: node3\n"
    "      raft: 10.0.0.3:7001\n"
    "      api: 10.0.0.3:8008\n"
    "restapi:\n"
    "  listen: 0.0.0.0:8008\n"
    "  connect_address: 10.0.0.2:8008\n"
    "  max_connections: 300\n"
    "  request_timeout: 2\n"
    "log:\n"
    "  level: warning\n"
    "  format: json\n"
    "postgresql:\n"
    "  bin_dir: /usr/lib/postgresql/16/bin\n"
    "  data_dir: /srv/pg/data\n"
    "  listen: 0.0.0.0:5432\n"
    "  connect_address: 10.0.0.2:5432\n"
    "  parameters: {max_connections: 100, shared_buffers: 128MB, hot_standby: on}\n"
    "  pg_hba:\n"
    "    - host replication replicator 10.0.0.0/24 scram-sha-256\n"
    "    - \"host all all 0.0.0.0/0 scram-sha-256\"\n"
    "  authentication:\n"
    "    superuser: {username: admin, password: s3cret}\n"
    "    replication:\n"
    "      username: repl\n"
    "      password: 'r3pl: \"quoted\"'\n"
    "  passfile: /srv/pg/.pgpass\n"
    "tags:\n"
    "  nofailover: yes\n"
    "  nosync: on\n"
    "  failover_priority: 0\n"
    "vip:\n"
    "  address: 10.0.0.100/24\n"
    "  interface: eth0\n"
    "  arping_count: 2\n"
    "watchdog: {mode: automatic, safety_margin: 500}\n";

static int load(const char *text)
{
    memset(errmsg, 0, sizeof errmsg);
    return conf_load_string("t.yaml", text, &c, errmsg);
}

static int teardown(void **state)
{
    (void)state;
    conf_free(&c);
    return 0;
}

/* Loading text fails with RPG_ECONFIG and exactly the expected message. */
#define assert_conf_error(text, expected)                                                          \
    do {                                                                                           \
        assert_int_equal(load(text), RPG_ECONFIG);                                                 \
        assert_string_equal(errmsg, expected);                                                     \
    } while (0)

/* Writes text to a new temporary file and returns its path (short enough for any message). */
static void write_temp(const char *text, size_t len, char path[64])
{
    strcpy(path, "/tmp/test_conf_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* ---- valid files ------------------------------------------------------------------------- */

/* Writes text to a new temporary file with mode; the path goes into path (64 bytes). */
static void secret_file(char *path, const char *text, mode_t mode)
{
    snprintf(path, 64, "/tmp/raftpg-test-secret.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

#define SECRET_HEX "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

static void test_secret_file_is_read_when_private(void **state)
{
    (void)state;
    char path[64], text[512];
    uint8_t key[CONF_SECRET_SIZE];
    secret_file(path, "\n" SECRET_HEX "\n", 0600);
    snprintf(text, sizeof text, HEAD "  secret_file: %s\n" MEMBERS, path);
    assert_int_equal(load(text), 0);
    assert_string_equal(c.raft.secret_file, path);
    assert_int_equal(c.raft.secret_file_pos.line, 5);
    assert_int_equal(c.raft.secret_file_pos.col, 16);
    assert_int_equal(conf_secret_read(&c, false, false, key, errmsg), 0);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[1], 0x11);
    assert_int_equal(key[31], 0xff);
    assert_int_equal(conf_secret_read(&c, true, false, key, errmsg), RPG_ENOTFOUND);
    unlink(path);
}

static void test_secret_file_readable_by_others_is_refused(void **state)
{
    (void)state;
    char path[64], text[512], expected[512];
    uint8_t key[CONF_SECRET_SIZE];
    secret_file(path, SECRET_HEX, 0640);
    snprintf(text, sizeof text, HEAD "  secret_file: %s\n" MEMBERS, path);
    assert_int_equal(load(text), 0);
    assert_int_equal(conf_secret_read(&c, false, false, key, errmsg), RPG_ECONFIG);
    snprintf(expected, sizeof expected,
             "t.yaml:5:16: raft.secret_file: %s is accessible to its group or to others (mode "
             "0640); chmod 600 it",
             path);
    assert_string_equal(errmsg, expected);
    unlink(path);
}

static void test_secret_file_of_another_user_is_refused_unless_any_owner(void **state)
{
    (void)state;
    char path[64], text[512], expected[512];
    uint8_t key[CONF_SECRET_SIZE];
    secret_file(path, SECRET_HEX, 0600);
    if (chown(path, 65534, 65534) != 0) {
        unlink(path);
        skip(); /* only root can give a file away */
    }
    snprintf(text, sizeof text, HEAD "  secret_file: %s\n" MEMBERS, path);
    assert_int_equal(load(text), 0);
    assert_int_equal(conf_secret_read(&c, false, false, key, errmsg), RPG_ECONFIG);
    snprintf(expected, sizeof expected,
             "t.yaml:5:16: raft.secret_file: %s must be owned by the agent's user (owner "
             "uid=65534, agent uid=%u)",
             path, (unsigned)geteuid());
    assert_string_equal(errmsg, expected);
    assert_int_equal(conf_secret_read(&c, false, true, key, errmsg), 0);
    unlink(path);
}

static void test_secret_file_must_hold_64_hex_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "abc", SECRET_HEX "0", SECRET_HEX "00", "x" SECRET_HEX, SECRET_HEX " x"};
    char path[64], text[512], expected[512];
    uint8_t key[CONF_SECRET_SIZE];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        secret_file(path, bad[i], 0600);
        snprintf(text, sizeof text, HEAD "  secret_file: %s\n" MEMBERS, path);
        assert_int_equal(load(text), 0);
        assert_int_equal(conf_secret_read(&c, false, false, key, errmsg), RPG_ECONFIG);
        snprintf(expected, sizeof expected,
                 "t.yaml:5:16: raft.secret_file: %s: expected exactly 64 hex digits (raftpg "
                 "gen-secret FILE writes one)",
                 path);
        assert_string_equal(errmsg, expected);
        conf_free(&c);
        unlink(path);
    }
}

static void test_missing_secret_file_is_an_error_at_its_key(void **state)
{
    (void)state;
    uint8_t key[CONF_SECRET_SIZE];
    assert_int_equal(load(HEAD "  secret_file: /nonexistent/secret\n"
                               "  secret_file_previous: /nonexistent/old\n" MEMBERS),
                     0);
    assert_int_equal(conf_secret_read(&c, true, false, key, errmsg), RPG_ECONFIG);
    assert_string_equal(errmsg, "t.yaml:6:25: raft.secret_file_previous: cannot read "
                                "/nonexistent/old: No such file or directory");
}

static void test_previous_secret_needs_a_primary_one(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  secret_file_previous: /etc/raftpg/old\n" MEMBERS,
                      "t.yaml:5:25: raft.secret_file_previous: requires raft.secret_file");
    assert_conf_error(
        HEAD "  secret_file: /etc/raftpg/s\n  secret_file_previous: /etc/raftpg/s\n" MEMBERS,
        "t.yaml:6:25: raft.secret_file_previous: must name another file than "
        "raft.secret_file (file=/etc/raftpg/s)");
}

static void test_generated_secret_is_private_and_never_overwritten(void **state)
{
    (void)state;
    char path[64], text[512];
    uint8_t key[CONF_SECRET_SIZE];
    struct stat st;
    snprintf(path, sizeof path, "/tmp/raftpg-test-gen.%d", (int)getpid());
    unlink(path);
    assert_int_equal(conf_secret_generate(path, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 65);
    assert_int_equal(conf_secret_generate(path, errmsg), RPG_EEXIST);
    snprintf(text, sizeof text, HEAD "  secret_file: %s\n" MEMBERS, path);
    assert_int_equal(load(text), 0);
    assert_int_equal(conf_secret_read(&c, false, false, key, errmsg), 0);
    unlink(path);
}

static void test_full_file_sets_every_value(void **state)
{
    (void)state;
    assert_int_equal(load(full), 0);
    assert_string_equal(c.path, "t.yaml");
    assert_string_equal(c.scope, "prod-1");
    assert_string_equal(c.name, "node2");

    assert_string_equal(c.raft.listen, "10.0.0.2:7001");
    assert_string_equal(c.raft.data_dir, "/var/lib/raftpg/node2");
    assert_int_equal(c.raft.election_timeout_ms, 1000);
    assert_int_equal(c.raft.heartbeat_timeout_ms, 150);
    assert_false(c.raft.pre_vote);
    assert_int_equal(c.raft.n_members, 3);
    assert_string_equal(c.raft.members[0].name, "node1");
    assert_string_equal(c.raft.members[0].raft, "10.0.0.1:7001");
    assert_string_equal(c.raft.members[0].api, "10.0.0.1:8008");
    assert_string_equal(c.raft.members[1].name, "node2");
    assert_string_equal(c.raft.members[1].raft, "10.0.0.2:7001");
    assert_string_equal(c.raft.members[1].api, "10.0.0.2:8008");
    assert_string_equal(c.raft.members[2].name, "node3");
    assert_string_equal(c.raft.members[2].raft, "10.0.0.3:7001");
    assert_string_equal(c.raft.members[2].api, "10.0.0.3:8008");

    assert_string_equal(c.restapi.listen, "0.0.0.0:8008");
    assert_string_equal(c.restapi.connect_address, "10.0.0.2:8008");
    assert_int_equal(c.restapi.max_connections, 300);
    assert_int_equal(c.restapi.request_timeout_s, 2);
    assert_int_equal(c.log.level, CONF_LOG_WARNING);
    assert_int_equal(c.log.format, CONF_LOG_JSON);

    assert_true(c.has_postgresql);
    assert_string_equal(c.postgresql.bin_dir, "/usr/lib/postgresql/16/bin");
    assert_string_equal(c.postgresql.data_dir, "/srv/pg/data");
    assert_string_equal(c.postgresql.listen, "0.0.0.0:5432");
    assert_string_equal(c.postgresql.connect_address, "10.0.0.2:5432");
    assert_int_equal(c.postgresql.n_parameters, 3);
    assert_string_equal(c.postgresql.parameters[0].key, "max_connections");
    assert_string_equal(c.postgresql.parameters[0].value, "100");
    assert_string_equal(c.postgresql.parameters[1].key, "shared_buffers");
    assert_string_equal(c.postgresql.parameters[1].value, "128MB");
    assert_string_equal(c.postgresql.parameters[2].key, "hot_standby");
    assert_string_equal(c.postgresql.parameters[2].value, "on");
    assert_int_equal(c.postgresql.n_pg_hba, 2);
    assert_string_equal(c.postgresql.pg_hba[0],
                        "host replication replicator 10.0.0.0/24 scram-sha-256");
    assert_string_equal(c.postgresql.pg_hba[1], "host all all 0.0.0.0/0 scram-sha-256");
    assert_string_equal(c.postgresql.superuser_name, "admin");
    assert_string_equal(c.postgresql.superuser_password, "s3cret");
    assert_string_equal(c.postgresql.replication_name, "repl");
    assert_string_equal(c.postgresql.replication_password, "r3pl: \"quoted\"");
    assert_string_equal(c.postgresql.passfile, "/srv/pg/.pgpass");

    assert_true(c.tags.nofailover);
    assert_true(c.tags.nosync);
    assert_int_equal(c.tags.failover_priority, 0);

    assert_true(c.has_vip);
    assert_string_equal(c.vip.address.text, "10.0.0.100/24");
    assert_string_equal(c.vip.interface, "eth0");
    assert_int_equal(c.vip.arping_count, 2);
    assert_int_equal(c.vip.announce_repeats, 3);
    assert_int_equal(c.watchdog.mode, CONF_WATCHDOG_AUTOMATIC);
    assert_int_equal(c.watchdog.safety_margin_ms, 500);
}

static void test_minimal_file_gets_defaults(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(c.raft.listen, "127.0.0.1:7001");
    assert_int_equal(c.raft.election_timeout_ms, 500);
    assert_int_equal(c.raft.heartbeat_timeout_ms, 100);
    assert_true(c.raft.pre_vote);
    assert_string_equal(c.restapi.listen, "127.0.0.1:8001");
    assert_string_equal(c.restapi.connect_address, "127.0.0.1:8001");
    assert_int_equal(c.restapi.max_connections, 1000);
    assert_int_equal(c.restapi.request_timeout_s, 5);
    assert_int_equal(c.log.level, CONF_LOG_INFO);
    assert_int_equal(c.log.format, CONF_LOG_TEXT);
    assert_false(c.has_postgresql);
    assert_false(c.tags.nofailover);
    assert_false(c.tags.nosync);
    assert_int_equal(c.tags.failover_priority, 1);
    assert_false(c.has_vip);
    assert_int_equal(c.watchdog.mode, CONF_WATCHDOG_OFF);
    assert_string_equal(c.watchdog.device, "/dev/watchdog");
    assert_int_equal(c.watchdog.safety_margin_ms, 1000);
}

static void test_postgresql_section_gets_defaults(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"),
                     0);
    assert_true(c.has_postgresql);
    assert_string_equal(c.postgresql.bin_dir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(c.postgresql.connect_address, "127.0.0.1:5433");
    assert_string_equal(c.postgresql.superuser_name, "postgres");
    assert_string_equal(c.postgresql.superuser_password, "");
    assert_string_equal(c.postgresql.replication_name, "replicator");
    assert_string_equal(c.postgresql.replication_password, "");
    assert_string_equal(c.postgresql.passfile, "");
    assert_false(c.postgresql.remove_data_directory_on_rewind_failure);
    assert_false(c.postgresql.remove_data_directory_on_diverged_timelines);
    assert_int_equal(c.postgresql.n_parameters, 0);
    assert_null(c.postgresql.parameters);
    assert_int_equal(c.postgresql.n_pg_hba, 0);
    assert_null(c.postgresql.pg_hba);
}

/* Patroni's postgresql.recovery_conf.restore_command; other recovery settings are raftpg's own. */
static void test_recovery_conf_restore_command(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"
                                  "  recovery_conf:\n"
                                  "    restore_command: cp /archive/%f %p\n"),
                     0);
    assert_string_equal(c.postgresql.restore_command, "cp /archive/%f %p");
    conf_free(&c);
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"),
                     0);
    assert_string_equal(c.postgresql.restore_command, "");
    conf_free(&c);
    assert_int_not_equal(load(MINIMAL "postgresql:\n"
                                      "  data_dir: /pg\n"
                                      "  listen: 127.0.0.1:5433\n"
                                      "  recovery_conf:\n"
                                      "    recovery_target_timeline: latest\n"),
                         0);
    assert_non_null(strstr(errmsg, "recovery_target_timeline"));
}

/* Patroni's postgresql.basebackup.max-rate, checked as pg_basebackup checks --max-rate. */
static void test_basebackup_max_rate(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"
                                  "  basebackup:\n"
                                  "    max-rate: 100M\n"),
                     0);
    assert_string_equal(c.postgresql.basebackup_max_rate, "100M");
    conf_free(&c);
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"),
                     0);
    assert_string_equal(c.postgresql.basebackup_max_rate, "");
    conf_free(&c);
    assert_int_not_equal(load(MINIMAL "postgresql:\n"
                                      "  data_dir: /pg\n"
                                      "  listen: 127.0.0.1:5433\n"
                                      "  basebackup:\n"
                                      "    max-rate: fast\n"),
                         0);
    assert_non_null(strstr(errmsg, "postgresql.basebackup.max-rate: expected 32 to 1048576 kB/s"));
    assert_non_null(strstr(errmsg, "got \"fast\""));
    static const char *const good[] = {"32", "1048576", "32k", "1024M", "500k", NULL};
    static const char *const bad[] = {"",   "31",  "1048577", "1025M",       "10G", "5kB",
                                      "-1", "1e3", "k",       "99999999999", NULL};
    for (unsigned i = 0; good[i] != NULL; i++) {
        assert_true(conf_rate_valid(good[i]));
    }
    for (unsigned i = 0; bad[i] != NULL; i++) {
        assert_false(conf_rate_valid(bad[i]));
    }
}

static void test_member_restapi_listen_keeps_api_as_connect_address(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "restapi:\n"
                                  "  listen: 0.0.0.0:8001\n"),
                     0);
    assert_string_equal(c.restapi.listen, "0.0.0.0:8001");
    assert_string_equal(c.restapi.connect_address, "127.0.0.1:8001");
}

static void test_booleans_accept_yaml_spellings(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "tags:\n"
                                  "  nofailover: on\n"
                                  "  nosync: True\n"),
                     0);
    assert_true(c.tags.nofailover);
    assert_true(c.tags.nosync);
    conf_free(&c);
    static const char text[] = HEAD "  pre_vote: off\n" MEMBERS "tags:\n"
                                    "  nofailover: no\n"
                                    "  nosync: FALSE\n";
    assert_int_equal(load(text), 0);
    assert_false(c.raft.pre_vote);
    assert_false(c.tags.nofailover);
    assert_false(c.tags.nosync);
}

static void test_enums_are_case_insensitive(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "log:\n"
                                  "  level: DEBUG\n"
                                  "  format: Json\n"),
                     0);
    assert_int_equal(c.log.level, CONF_LOG_DEBUG);
    assert_int_equal(c.log.format, CONF_LOG_JSON);
}

static void test_integer_range_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_int_equal(load(HEAD "  election_timeout: 60000\n"
                               "  heartbeat_timeout: 10\n" MEMBERS "tags:\n"
                               "  failover_priority: 1000\n"),
                     0);
    assert_int_equal(c.raft.election_timeout_ms, 60000);
    assert_int_equal(c.raft.heartbeat_timeout_ms, 10);
    assert_int_equal(c.tags.failover_priority, 1000);
}

static void test_parameters_keep_text_and_order(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"
                                  "  parameters:\n"
                                  "    wal_level: replica\n"
                                  "    hot_standby: on\n"
                                  "    work_mem: \"4MB\"\n"
                                  "    pg_stat_statements.max: 010\n"
                                  "    shared_preload_libraries: ''\n"),
                     0);
    assert_int_equal(c.postgresql.n_parameters, 5);
    assert_string_equal(c.postgresql.parameters[0].key, "wal_level");
    assert_string_equal(c.postgresql.parameters[0].value, "replica");
    assert_string_equal(c.postgresql.parameters[1].key, "hot_standby");
    assert_string_equal(c.postgresql.parameters[1].value, "on");
    assert_string_equal(c.postgresql.parameters[2].key, "work_mem");
    assert_string_equal(c.postgresql.parameters[2].value, "4MB");
    assert_string_equal(c.postgresql.parameters[3].key, "pg_stat_statements.max");
    assert_string_equal(c.postgresql.parameters[3].value, "010");
    assert_string_equal(c.postgresql.parameters[4].key, "shared_preload_libraries");
    assert_string_equal(c.postgresql.parameters[4].value, "");
}

static void test_nine_members_are_accepted(void **state)
{
    (void)state;
    char text[2048];
    size_t n = (size_t)snprintf(text, sizeof text, HEAD "  members:\n");
    for (int i = 1; i <= 9; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "    - {name: node%d, raft: 127.0.0.1:700%d, api: 127.0.0.1:800%d}\n",
                              i, i, i);
    }
    assert_int_equal(load(text), 0);
    assert_int_equal(c.raft.n_members, 9);
    assert_string_equal(c.raft.members[8].name, "node9");
}

/* ---- conf_self ------------------------------------------------------------------------------ */

static void test_self_is_this_members_entry(void **state)
{
    (void)state;
    assert_int_equal(load(full), 0);
    const struct conf_member *self = conf_self(&c);
    assert_non_null(self);
    assert_ptr_equal(self, &c.raft.members[1]);
    assert_string_equal(self->name, "node2");
}

static void test_joiner_has_no_self_and_keeps_its_listens(void **state)
{
    (void)state;
    assert_int_equal(load("scope: demo\n"
                          "name: node4\n"
                          "raft:\n"
                          "  listen: 127.0.0.1:7004\n"
                          "  data_dir: /var/lib/raftpg/node4\n" MEMBERS "restapi:\n"
                          "  listen: 127.0.0.1:8004\n"),
                     0);
    assert_null(conf_self(&c));
    assert_string_equal(c.raft.listen, "127.0.0.1:7004");
    assert_string_equal(c.restapi.listen, "127.0.0.1:8004");
    assert_string_equal(c.restapi.connect_address, "127.0.0.1:8004");
}

static void test_self_on_zeroed_struct_is_null(void **state)
{
    (void)state;
    memset(&c, 0, sizeof c);
    assert_null(conf_self(&c));
}

/* Lines 9-11 after MINIMAL: a vip section with only its required keys. */
#define VIP                                                                                        \
    "vip:\n"                                                                                       \
    "  address: 10.231.0.100/24\n"                                                                 \
    "  interface: eth0\n"

static void test_vip_and_watchdog_set_every_value(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "vip:\n"
                                  "  address: 192.168.7.9/23\n"
                                  "  interface: br-lan.42\n"
                                  "  arping_count: 5\n"
                                  "  announce_repeats: 0\n"
                                  "  announce_interval: 250\n"
                                  "  lifetime: 9\n"
                                  "  ip_bin: /sbin/ip\n"
                                  "  arping_bin: /opt/arping/bin/arping\n"
                                  "watchdog:\n"
                                  "  mode: required\n"
                                  "  device: /dev/watchdog1\n"
                                  "  safety_margin: 2500\n"),
                     0);
    assert_true(c.has_vip);
    assert_string_equal(c.vip.address.text, "192.168.7.9/23");
    assert_string_equal(c.vip.address.host, "192.168.7.9");
    assert_int_equal(c.vip.address.prefix, 23);
    assert_string_equal(c.vip.interface, "br-lan.42");
    assert_int_equal(c.vip.arping_count, 5);
    assert_int_equal(c.vip.announce_repeats, 0);
    assert_int_equal(c.vip.announce_interval_ms, 250);
    assert_int_equal(c.vip.lifetime_s, 9);
    assert_string_equal(c.vip.ip_bin, "/sbin/ip");
    assert_string_equal(c.vip.arping_bin, "/opt/arping/bin/arping");
    assert_int_equal(c.watchdog.mode, CONF_WATCHDOG_REQUIRED);
    assert_string_equal(c.watchdog.device, "/dev/watchdog1");
    assert_int_equal(c.watchdog.safety_margin_ms, 2500);
}

static void test_vip_section_gets_defaults(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL VIP), 0);
    assert_true(c.has_vip);
    assert_string_equal(c.vip.address.text, "10.231.0.100/24");
    assert_string_equal(c.vip.address.host, "10.231.0.100");
    assert_int_equal(c.vip.address.prefix, 24);
    assert_string_equal(c.vip.interface, "eth0");
    assert_int_equal(c.vip.arping_count, 3);
    assert_int_equal(c.vip.announce_repeats, 3);
    assert_int_equal(c.vip.announce_interval_ms, 1000);
    assert_int_equal(c.vip.lifetime_s, 2);
    assert_string_equal(c.vip.ip_bin, "/usr/sbin/ip");
    assert_string_equal(c.vip.arping_bin, "/usr/sbin/arping");
}

static void test_watchdog_modes_are_read(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum conf_watchdog_mode mode;
    } cases[] = {
        {"off", CONF_WATCHDOG_OFF},
        {"automatic", CONF_WATCHDOG_AUTOMATIC},
        {"required", CONF_WATCHDOG_REQUIRED},
        {"Required", CONF_WATCHDOG_REQUIRED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, MINIMAL "watchdog: {mode: %s}\n", cases[i].text);
        assert_int_equal(load(text), 0);
        assert_int_equal(c.watchdog.mode, cases[i].mode);
        assert_string_equal(c.watchdog.device, "/dev/watchdog");
        conf_free(&c);
    }
}

/* /31 and /32 have no network or broadcast address (RFC 3021), so any host is one. */
static void test_vip_prefix_31_and_32_take_any_host(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "vip: {address: 10.231.0.0/31, interface: eth0}\n"), 0);
    assert_int_equal(c.vip.address.prefix, 31);
    conf_free(&c);
    assert_int_equal(load(MINIMAL "vip: {address: 10.231.0.255/32, interface: eth0}\n"), 0);
    assert_int_equal(c.vip.address.prefix, 32);
    conf_free(&c);
    assert_int_equal(load(MINIMAL "vip: {address: 10.231.0.1/1, interface: eth0}\n"), 0);
    assert_int_equal(c.vip.address.prefix, 1);
}

static void test_vip_interface_of_15_characters_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "vip: {address: 10.231.0.100/24, interface: abcdefghij.1234}\n"),
                     0);
    assert_string_equal(c.vip.interface, "abcdefghij.1234");
}

/* ---- error: keys ---------------------------------------------------------------------------- */

static void test_unknown_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  electon_timeout: 500\n" MEMBERS,
                      "t.yaml:5:3: raft.electon_timeout: unknown key");
}

static void test_unknown_top_level_key_is_rejected(void **state)
{
    (void)state;
    /* Patroni's store sections mean nothing here: the members are the store. */
    assert_conf_error(MINIMAL "etcd3:\n"
                              "  hosts: 10.0.0.1:2379\n",
                      "t.yaml:9:1: etcd3: unknown key");
}

static void test_unknown_member_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 127.0.0.1:8001\n"
                           "      port: 5432\n",
                      "t.yaml:9:7: raft.members[0].port: unknown key");
}

static void test_duplicate_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "scope: other\n",
                      "t.yaml:2:1: scope: duplicate key");
}

static void test_duplicate_key_in_section_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  data_dir: /elsewhere\n" MEMBERS,
                      "t.yaml:5:3: raft.data_dir: duplicate key");
}

static void test_non_scalar_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("? [a, b]\n"
                      ": 1\n",
                      "t.yaml:1:3: expected a scalar key, got a sequence");
}

static void test_missing_top_level_key_is_reported_at_the_mapping(void **state)
{
    (void)state;
    assert_conf_error("# comment\n"
                      "name: node1\n"
                      "raft:\n"
                      "  data_dir: /d\n" MEMBERS,
                      "t.yaml:2:1: scope: required key is missing");
}

static void test_missing_raft_section_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node1\n",
                      "t.yaml:1:1: raft: required key is missing");
}

static void test_missing_raft_data_dir_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node1\n"
                      "raft:\n" MEMBERS,
                      "t.yaml:4:3: raft.data_dir: required key is missing");
}

static void test_missing_member_key_is_reported_at_the_member(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 127.0.0.1:8001\n"
                           "    - name: node2\n"
                           "      raft: 127.0.0.1:7002\n",
                      "t.yaml:9:7: raft.members[1].api: required key is missing");
}

static void test_missing_postgresql_data_dir_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  listen: 127.0.0.1:5433\n",
                      "t.yaml:10:3: postgresql.data_dir: required key is missing");
}

/* ---- error: vip and watchdog ---------------------------------------------------------------- */

static void test_vip_address_without_prefix_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip:\n"
                              "  address: 10.231.0.100\n"
                              "  interface: eth0\n",
                      "t.yaml:10:12: vip.address: expected IPv4 address/prefix, got "
                      "\"10.231.0.100\"");
}

static void test_vip_address_malformed_is_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "vip.example.com/24",
        "10.231.0/24",
        "10.231.0.256/24",
        "10.231.0.100/",
        "10.231.0.100/x",
        "10.231.0.100/024",
        "/24",
        "::1/128",
        "10.231.0.100/24 ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, MINIMAL "vip: {interface: eth0, address: '%s'}\n", bad[i]);
        snprintf(want, sizeof want,
                 "t.yaml:9:33: vip.address: expected IPv4 address/prefix, got \"%s\"", bad[i]);
        assert_conf_error(text, want);
    }
}

static void test_vip_prefix_out_of_range_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip:\n"
                              "  address: 10.231.0.100/33\n"
                              "  interface: eth0\n",
                      "t.yaml:10:12: vip.address: expected a prefix length 1..32, got "
                      "\"10.231.0.100/33\"");
    assert_conf_error(MINIMAL "vip:\n"
                              "  address: 10.231.0.100/0\n"
                              "  interface: eth0\n",
                      "t.yaml:10:12: vip.address: expected a prefix length 1..32, got "
                      "\"10.231.0.100/0\"");
}

static void test_vip_address_must_be_unicast(void **state)
{
    (void)state;
    static const char *const bad[] = {"0.0.0.0/24", "0.1.2.3/8", "127.0.0.5/8", "224.0.0.1/24",
                                      "255.255.255.255/32"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, MINIMAL "vip: {interface: eth0, address: %s}\n", bad[i]);
        snprintf(want, sizeof want,
                 "t.yaml:9:33: vip.address: expected a unicast host address, got \"%s\"", bad[i]);
        assert_conf_error(text, want);
    }
}

static void test_vip_network_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip: {address: 10.231.0.0/24, interface: eth0}\n",
                      "t.yaml:9:16: vip.address: expected a host address, not the network "
                      "address of its prefix, got \"10.231.0.0/24\"");
}

static void test_vip_broadcast_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip: {address: 10.231.1.255/23, interface: eth0}\n",
                      "t.yaml:9:16: vip.address: expected a host address, not the broadcast "
                      "address of its prefix, got \"10.231.1.255/23\"");
}

static void test_vip_member_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - {name: node1, raft: 10.0.0.1:7001, api: 10.0.0.1:8001}\n"
                           "    - {name: node2, raft: 10.0.0.2:7001, api: 10.0.0.9:8001}\n"
                           "vip:\n"
                           "  interface: eth0\n"
                           "  address: 10.0.0.9/24\n",
                      "t.yaml:10:12: vip.address: must not be a member's own address "
                      "(address=10.0.0.9/24 raft.members[1].api=10.0.0.9:8001)");
}

static void test_vip_own_postgresql_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - {name: node1, raft: 10.0.0.1:7001, api: 10.0.0.1:8001}\n"
                           "postgresql:\n"
                           "  data_dir: /pg\n"
                           "  listen: 0.0.0.0:5432\n"
                           "  connect_address: 10.0.0.50:5432\n"
                           "vip: {address: 10.0.0.50/24, interface: eth0}\n",
                      "t.yaml:11:16: vip.address: must not be this member's own address "
                      "(address=10.0.0.50/24 postgresql.connect_address=10.0.0.50:5432)");
}

static void test_vip_bad_interface_is_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {"eth 0", "",   "eth0/1",     "abcdefghij.12345",
                                      ".",     "..", "eth\\u00e9", "-U"};
    static const char *const echo[] = {"eth 0", "",   "eth0/1",      "abcdefghij.12345",
                                       ".",     "..", "eth\xc3\xa9", "-U"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, MINIMAL "vip: {address: 10.231.0.100/24, interface: \"%s\"}\n",
                 bad[i]);
        snprintf(want, sizeof want,
                 "t.yaml:9:44: vip.interface: expected an interface name of 1..15 characters "
                 "from [A-Za-z0-9_.-] not starting with '-', got \"%s\"",
                 echo[i]);
        assert_conf_error(text, want);
    }
}

static void test_vip_alias_interface_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip:\n"
                              "  address: 10.231.0.100/24\n"
                              "  interface: eth0:1\n",
                      "t.yaml:11:14: vip.interface: expected an interface name, got \"eth0:1\" "
                      "(a name with ':' is an address label, name the interface itself)");
}

static void test_vip_unknown_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL VIP "  arping_timeout: 5\n",
                      "t.yaml:12:3: vip.arping_timeout: unknown key");
}

static void test_vip_missing_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip:\n"
                              "  interface: eth0\n",
                      "t.yaml:10:3: vip.address: required key is missing");
}

static void test_vip_missing_interface_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "vip: {address: 10.231.0.100/24}\n",
                      "t.yaml:9:6: vip.interface: required key is missing");
}

static void test_vip_counts_out_of_range_are_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL VIP "  arping_count: 0\n",
                      "t.yaml:12:17: vip.arping_count: expected an integer 1..100, got \"0\"");
    assert_conf_error(MINIMAL VIP "  arping_count: 101\n",
                      "t.yaml:12:17: vip.arping_count: expected an integer 1..100, got \"101\"");
    assert_conf_error(MINIMAL VIP "  announce_repeats: 101\n",
                      "t.yaml:12:21: vip.announce_repeats: expected an integer 0..100, got "
                      "\"101\"");
    assert_conf_error(MINIMAL VIP "  announce_interval: 9\n",
                      "t.yaml:12:22: vip.announce_interval: expected an integer 10..60000, got "
                      "\"9\"");
    assert_conf_error(MINIMAL VIP "  lifetime: 0\n",
                      "t.yaml:12:13: vip.lifetime: expected an integer 1..3600, got \"0\"");
}

static void test_vip_announcements_must_fit_in_the_lifetime(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL VIP "  announce_interval: 2000\n",
                      "t.yaml:12:22: vip.announce_interval: must be shorter than vip.lifetime "
                      "(announce_interval=2000 ms lifetime=2 s)");
    assert_int_equal(load(MINIMAL VIP "  announce_interval: 2000\n  lifetime: 3\n"), 0);
    /* One round only: nothing waits between rounds. */
    assert_int_equal(load(MINIMAL VIP "  announce_interval: 5000\n  announce_repeats: 1\n"), 0);
}

static void test_vip_relative_binary_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL VIP "  arping_bin: arping\n",
                      "t.yaml:12:15: vip.arping_bin: expected an absolute path, got \"arping\"");
}

static void test_sync_settings_default_to_quorum_one_on(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(c.sync.mode, SYNC_MODE_QUORUM);
    assert_int_equal(c.sync.node_count, 1);
    assert_int_equal(c.sync.commit, FSM_SYNC_COMMIT_ON);
}

static void test_sync_settings_are_read(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "synchronous_mode: strict\nsynchronous_node_count: 2\n"
                                  "synchronous_commit: remote_apply\n"),
                     0);
    assert_int_equal(c.sync.mode, SYNC_MODE_STRICT);
    assert_int_equal(c.sync.node_count, 2);
    assert_int_equal(c.sync.commit, FSM_SYNC_COMMIT_REMOTE_APPLY);
}

static void test_sync_wrong_values_are_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "synchronous_mode: strictly\n",
                      "t.yaml:9:19: synchronous_mode: expected one of off|quorum|strict, got "
                      "\"strictly\"");
    assert_conf_error(MINIMAL "synchronous_node_count: 0\n",
                      "t.yaml:9:25: synchronous_node_count: expected an integer 1..16, got \"0\"");
    assert_conf_error(MINIMAL "synchronous_commit: off\n",
                      "t.yaml:9:21: synchronous_commit: expected one of "
                      "on|remote_write|remote_apply|local, got \"off\"");
}

/* maximum_lag_on_failover: the value in force until the replicated configuration is recorded. */
static void test_max_lag_is_read(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_false(c.max_lag.set); /* absent: no limit */
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: 1048576\n"), 0);
    assert_true(c.max_lag.set);
    assert_int_equal(c.max_lag.bytes, 1048576);
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: 0\n"), 0);
    assert_true(c.max_lag.set);
    assert_int_equal(c.max_lag.bytes, 0);
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: 4611686018427387904\n"), 0);
    assert_int_equal(c.max_lag.bytes, (uint64_t)1 << 62);
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: null\n"), 0);
    assert_false(c.max_lag.set);
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: ~\n"), 0);
    assert_false(c.max_lag.set);
}

static void test_max_lag_wrong_values_are_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"1MB",  "-1",  "1.5", "4611686018427387905", "99999999999999999999",
                         "\"\"", "0x10"};
    const char *shown[] = {
        "\"1MB\"", "\"-1\"",  "\"1.5\"", "\"4611686018427387905\"", "\"99999999999999999999\"",
        "\"\"",    "\"0x10\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, MINIMAL "maximum_lag_on_failover: %s\n", bad[i]);
        snprintf(want, sizeof want,
                 "t.yaml:9:26: maximum_lag_on_failover: expected a number of bytes "
                 "0..4611686018427387904, or null (no limit), got %s",
                 shown[i]);
        assert_conf_error(text, want);
    }
    assert_conf_error(MINIMAL "maximum_lag_on_failover: [1]\n",
                      "t.yaml:9:26: maximum_lag_on_failover: expected a scalar, got a sequence");
}

/* Patroni's bootstrap.dcs: the dynamic keys raftpg records seed its settings, the parameters
 * and pg_hba lines are kept (checked, folded, sorted) for the first leader to record, and keys
 * with no meaning here are noted with their position and what stands in their place. */
static const char patroni_dcs[] = MINIMAL "bootstrap:\n"
                                          "  dcs:\n"
                                          "    ttl: 30\n"
                                          "    loop_wait: 10\n"
                                          "    retry_timeout: 10\n"
                                          "    maximum_lag_on_failover: 1048576\n"
                                          "    synchronous_mode: true\n"
                                          "    synchronous_node_count: 2\n"
                                          "    postgresql:\n"
                                          "      use_pg_rewind: false\n"
                                          "      use_slots: true\n"
                                          "      parameters:\n"
                                          "        Work_Mem: 8MB\n"
                                          "        max_connections: 200\n"
                                          "        wal_log_hints: on\n"
                                          "      pg_hba:\n"
                                          "        - host replication replicator 127.0.0.1/32 md5\n"
                                          "  initdb:\n"
                                          "    - encoding: UTF8\n"
                                          "    - data-checksums\n";

static void test_bootstrap_dcs_seeds_the_dynamic_settings(void **state)
{
    (void)state;
    assert_int_equal(load(patroni_dcs), 0);
    assert_true(c.max_lag.set);
    assert_int_equal(c.max_lag.bytes, 1048576);
    assert_int_equal(c.sync.mode, 1); /* Patroni's true: quorum */
    assert_int_equal(c.sync.node_count, 2);
    assert_int_equal(c.sync.commit, 0); /* not given: the default */
    assert_false(c.postgresql.use_pg_rewind);
    assert_int_equal(c.dcs.n_parameters, 3);
    assert_string_equal(c.dcs.parameters[0].key, "max_connections");
    assert_string_equal(c.dcs.parameters[0].value, "200");
    assert_string_equal(c.dcs.parameters[1].key, "wal_log_hints");
    assert_string_equal(c.dcs.parameters[1].value, "on");
    assert_string_equal(c.dcs.parameters[2].key, "work_mem");
    assert_string_equal(c.dcs.parameters[2].value, "8MB");
    assert_int_equal(c.dcs.n_pg_hba, 1);
    assert_string_equal(c.dcs.pg_hba[0], "host replication replicator 127.0.0.1/32 md5");
    /* The member's own postgresql.parameters stay its own. */
    assert_int_equal(c.postgresql.n_parameters, 0);
    assert_int_equal(c.n_warnings, 5);
    assert_string_equal(c.warnings[0],
                        "t.yaml:11:10: bootstrap.dcs.ttl: ignored: raftpg has no leader key with "
                        "a time to live: the primary's lease is Raft leadership, set by "
                        "raft.election_timeout in each member's file");
    assert_string_equal(c.warnings[1], "t.yaml:12:16: bootstrap.dcs.loop_wait: ignored: no loop "
                                       "sleeps here: each agent decides every 100 ms and on "
                                       "every change");
    assert_string_equal(c.warnings[2],
                        "t.yaml:13:20: bootstrap.dcs.retry_timeout: ignored: no store is retried "
                        "here: a primary that loses a Raft majority for raft.election_timeout is "
                        "fenced");
    assert_string_equal(c.warnings[3], "t.yaml:19:18: bootstrap.dcs.postgresql.use_slots: ignored: "
                                       "raftpg always keeps one replication slot per member");
    assert_string_equal(c.warnings[4],
                        "t.yaml:27:5: bootstrap.initdb: ignored: raftpg runs initdb with "
                        "--data-checksums --encoding=UTF8 and its own authentication");
    /* Without bootstrap.dcs, nothing to seed and nothing to say. */
    conf_free(&c);
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(c.dcs.n_parameters, 0);
    assert_int_equal(c.n_warnings, 0);
}

/* A key in both places: the same value is fine, different ones are refused naming both. */
static void test_bootstrap_dcs_and_top_level_must_agree(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "maximum_lag_on_failover: 1048576\n"
                                  "bootstrap:\n"
                                  "  dcs:\n"
                                  "    maximum_lag_on_failover: 1048576\n"),
                     0);
    assert_int_equal(c.max_lag.bytes, 1048576);
    assert_conf_error(MINIMAL "maximum_lag_on_failover: 16777216\n"
                              "bootstrap:\n"
                              "  dcs:\n"
                              "    maximum_lag_on_failover: 1048576\n",
                      "t.yaml:12:30: bootstrap.dcs.maximum_lag_on_failover: 1048576 differs from "
                      "maximum_lag_on_failover at t.yaml:9:26 (16777216): give it in one place");
    assert_conf_error(MINIMAL "maximum_lag_on_failover: null\n"
                              "bootstrap:\n"
                              "  dcs:\n"
                              "    maximum_lag_on_failover: 0\n",
                      "t.yaml:12:30: bootstrap.dcs.maximum_lag_on_failover: 0 differs from "
                      "maximum_lag_on_failover at t.yaml:9:26 (null): give it in one place");
    assert_conf_error(MINIMAL "synchronous_mode: strict\n"
                              "bootstrap:\n"
                              "  dcs: {synchronous_mode: on}\n",
                      "t.yaml:11:27: bootstrap.dcs.synchronous_mode: quorum differs from "
                      "synchronous_mode at t.yaml:9:19 (strict): give it in one place");
    assert_conf_error(MINIMAL "synchronous_node_count: 1\n"
                              "bootstrap:\n"
                              "  dcs:\n"
                              "    synchronous_node_count: 2\n",
                      "t.yaml:12:29: bootstrap.dcs.synchronous_node_count: 2 differs from "
                      "synchronous_node_count at t.yaml:9:25 (1): give it in one place");
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /srv/pg\n"
                              "  listen: 127.0.0.1:5432\n"
                              "  use_pg_rewind: true\n"
                              "bootstrap:\n"
                              "  dcs:\n"
                              "    postgresql: {use_pg_rewind: false}\n",
                      "t.yaml:15:33: bootstrap.dcs.postgresql.use_pg_rewind: false differs from "
                      "postgresql.use_pg_rewind at t.yaml:12:18 (true): give it in one place");
    /* The member's own keys under postgresql, the longest paths a file can hold. */
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  dcs:\n"
                                  "    postgresql:\n"
                                  "      remove_data_directory_on_rewind_failure: true\n"
                                  "      remove_data_directory_on_diverged_timelines: true\n"),
                     0);
    assert_true(c.postgresql.remove_data_directory_on_rewind_failure);
    assert_true(c.postgresql.remove_data_directory_on_diverged_timelines);
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /srv/pg\n"
                              "  listen: 127.0.0.1:5432\n"
                              "  remove_data_directory_on_diverged_timelines: false\n"
                              "bootstrap:\n"
                              "  dcs:\n"
                              "    postgresql:\n"
                              "      remove_data_directory_on_diverged_timelines: true\n",
                      "t.yaml:16:52: bootstrap.dcs.postgresql.remove_data_directory_on_diverged_"
                      "timelines: true differs from postgresql.remove_data_directory_on_diverged_"
                      "timelines at t.yaml:12:48 (false): give it in one place");
    /* Patroni's strict flag makes the mode strict, and needs a mode that is on. */
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  dcs: {synchronous_mode: on, synchronous_mode_strict: true}\n"),
                     0);
    assert_int_equal(c.sync.mode, 2);
    assert_int_equal(load(MINIMAL
                          "bootstrap:\n"
                          "  dcs: {synchronous_mode: on, synchronous_mode_strict: false}\n"),
                     0);
    assert_int_equal(c.sync.mode, 1);
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs: {synchronous_mode_strict: true}\n",
                      "t.yaml:10:34: bootstrap.dcs.synchronous_mode_strict: requires "
                      "bootstrap.dcs.synchronous_mode on (or quorum): strict means nothing with "
                      "asynchronous replication");
}

/* Patroni's post_bootstrap and its older name post_init: one script, given once. */
static void test_bootstrap_post_bootstrap_and_post_init(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(c.bootstrap.post_bootstrap, "");
    assert_int_equal(c.bootstrap.post_bootstrap_timeout_s, 600);
    assert_false(c.bootstrap.custom);
    conf_free(&c);
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  post_bootstrap: /etc/raftpg/post.sh --verbose\n"
                                  "  post_bootstrap_timeout: 30\n"),
                     0);
    assert_string_equal(c.bootstrap.post_bootstrap, "/etc/raftpg/post.sh --verbose");
    assert_int_equal(c.bootstrap.post_bootstrap_timeout_s, 30);
    conf_free(&c);
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  post_init: /etc/raftpg/init.sh\n"),
                     0);
    assert_string_equal(c.bootstrap.post_bootstrap, "/etc/raftpg/init.sh");
    conf_free(&c);
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  post_bootstrap: /a.sh\n"
                              "  post_init: /b.sh\n",
                      "t.yaml:11:14: bootstrap.post_init: given with bootstrap.post_bootstrap, "
                      "which is the same key: keep one");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  post_bootstrap: \"\"\n",
                      "t.yaml:10:19: bootstrap.post_bootstrap: expected 1..511 bytes, got 0");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  post_bootstrap: [/a.sh]\n",
                      "t.yaml:10:19: bootstrap.post_bootstrap: expected a scalar, got a sequence");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  post_bootstrap_timeout: 0\n",
                      "t.yaml:10:27: bootstrap.post_bootstrap_timeout: expected an integer "
                      "1..86400, got \"0\"");
}

/* Patroni 4 removed bootstrap.users: an error that says where the roles go instead. */
static void test_bootstrap_users_is_refused(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  users:\n"
                              "    admin:\n"
                              "      password: secret\n"
                              "      options: [createrole, createdb]\n",
                      "t.yaml:11:5: bootstrap.users: not supported: Patroni 4 removed it: create "
                      "the roles in a bootstrap.post_bootstrap script, which runs once as the "
                      "superuser when the cluster is new");
}

/* bootstrap.method names a section with a command; its other keys become --key=value. */
static void test_bootstrap_custom_method_is_read(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  method: barman\n"
                                  "  barman:\n"
                                  "    command: /usr/bin/restore --from backup\n"
                                  "    keep_existing_recovery_conf: false\n"
                                  "    barman-server: main\n"
                                  "    retries: 3\n"
                                  "    scope: other\n"
                                  "  wal_e:\n"
                                  "    command: /usr/bin/wal-e\n"
                                  "    no_params: true\n"),
                     0);
    assert_true(c.bootstrap.custom);
    assert_int_equal(c.bootstrap.n_methods, 2);
    const struct conf_boot_method *m = &c.bootstrap.methods[c.bootstrap.custom_index];
    assert_string_equal(m->name, "barman");
    assert_string_equal(m->command, "/usr/bin/restore --from backup");
    assert_false(m->no_params);
    assert_int_equal(m->n_args, 2);
    assert_string_equal(m->args[0].key, "barman-server");
    assert_string_equal(m->args[0].value, "main");
    assert_string_equal(m->args[1].key, "retries");
    assert_string_equal(m->args[1].value, "3");
    assert_true(c.bootstrap.methods[1].no_params);
    assert_int_equal(c.n_warnings, 2);
    assert_string_equal(c.warnings[0], "t.yaml:16:12: bootstrap.barman.scope: ignored: raftpg "
                                       "passes --scope itself unless no_params is true");
    assert_string_equal(c.warnings[1], "t.yaml:18:5: bootstrap.wal_e: ignored: bootstrap.method "
                                       "names barman");
    conf_free(&c);
    /* initdb by name, as Patroni allows. */
    assert_int_equal(load(MINIMAL "bootstrap:\n"
                                  "  method: initdb\n"),
                     0);
    assert_false(c.bootstrap.custom);
}

static void test_bootstrap_custom_method_errors(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: barman\n"
                              "  barman:\n"
                              "    no_params: true\n",
                      "t.yaml:12:5: bootstrap.barman.command: required key is missing");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: barman\n"
                              "  barman:\n"
                              "    command: /r\n"
                              "    keep_existing_recovery_conf: true\n",
                      "t.yaml:13:34: bootstrap.barman.keep_existing_recovery_conf: true is not "
                      "supported: raftpg starts the directory the command leaves as a primary, "
                      "without recovery settings (have the command recover it to its target and "
                      "promote it)");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: barman\n"
                              "  barman:\n"
                              "    command: /r\n"
                              "    recovery_conf:\n"
                              "      recovery_target_action: promote\n",
                      "t.yaml:14:7: bootstrap.barman.recovery_conf: not supported: raftpg starts "
                      "the directory the command leaves as a primary, without recovery settings: "
                      "have the command recover it to its target and promote it");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: barman\n"
                              "  barman:\n"
                              "    command: /r\n"
                              "    \"a b\": 1\n",
                      "t.yaml:13:5: bootstrap.barman.a b: expected an argument name of 1..63 "
                      "characters from [A-Za-z0-9_.-] (passed to command as --name=value) or one "
                      "of command, no_params, keep_existing_recovery_conf");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: barman\n"
                              "  barman:\n"
                              "    command: /r\n"
                              "    opts: [a, b]\n",
                      "t.yaml:13:11: bootstrap.barman.opts: expected a scalar (an argument's "
                      "value), got a sequence");
    /* A misspelt key is no method: it says what a method would be. */
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  post_bootsrap: /a.sh\n",
                      "t.yaml:10:18: bootstrap.post_bootsrap: unknown key (a custom bootstrap "
                      "method, which bootstrap.method names, is a mapping with a command; got a "
                      "scalar)");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: bad name\n",
                      "t.yaml:10:11: bootstrap.method: expected a name of 1..63 characters from "
                      "[A-Za-z0-9_.-], got \"bad name\"");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  a: {command: /a}\n"
                              "  b: {command: /b}\n"
                              "  c: {command: /c}\n"
                              "  d: {command: /d}\n"
                              "  e: {command: /e}\n",
                      "t.yaml:14:6: bootstrap.e: expected at most 4 custom bootstrap methods");
}

static void test_bootstrap_dcs_wrong_values_are_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    standby_cluster:\n"
                              "      host: 10.0.0.1\n",
                      "t.yaml:12:7: bootstrap.dcs.standby_cluster: not supported: raftpg runs no "
                      "standby clusters: this file would bootstrap a new primary");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    check_timelines: true\n",
                      "t.yaml:11:5: bootstrap.dcs.check_timelines: unknown key");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  method: wal_e\n",
                      "t.yaml:10:11: bootstrap.method: names no custom method: add a section "
                      "bootstrap.wal_e with a command, or use initdb");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    synchronous_mode: maybe\n",
                      "t.yaml:11:23: bootstrap.dcs.synchronous_mode: expected off, quorum or "
                      "strict (or Patroni's on/true, read as quorum), got \"maybe\"");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    maximum_lag_on_failover: 1MB\n",
                      "t.yaml:11:30: bootstrap.dcs.maximum_lag_on_failover: expected a number of "
                      "bytes 0..4611686018427387904, or null (no limit), got \"1MB\"");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    postgresql:\n"
                              "      parameters:\n"
                              "        work_mem: 8MB\n"
                              "        Synchronous_Standby_Names: '*'\n",
                      "t.yaml:14:36: bootstrap.dcs.postgresql.parameters.synchronous_standby_names:"
                      " not settable here: raftpg manages it (synchronous_mode and "
                      "synchronous_node_count)");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    postgresql:\n"
                              "      pg_hba:\n"
                              "        - local all all peer\n"
                              "        - include_dir hba.d\n",
                      "t.yaml:14:11: bootstrap.dcs.postgresql.pg_hba[1]: expected a line "
                      "beginning with local, host, hostssl, hostnossl, hostgssenc or "
                      "hostnogssenc, got \"include_dir hba.d\"");
    assert_conf_error(MINIMAL "bootstrap:\n"
                              "  dcs:\n"
                              "    postgresql:\n"
                              "      pg_ident: ['m1 s1 u1']\n",
                      "t.yaml:12:17: bootstrap.dcs.postgresql.pg_ident: not supported: raftpg "
                      "does not write pg_ident.conf: keep the file in each data directory");
}

/* primary_start_timeout (Patroni's; master_start_timeout, its old name): seconds, 300 by default,
 * 0 allowed; a bad value or both names in one file are refused with the file, line and key. */
static void test_primary_start_timeout(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(c.primary_start_timeout_s, 300);
    assert_int_equal(load(MINIMAL "primary_start_timeout: 5\n"), 0);
    assert_int_equal(c.primary_start_timeout_s, 5);
    assert_int_equal(load(MINIMAL "primary_start_timeout: 0\n"), 0);
    assert_int_equal(c.primary_start_timeout_s, 0);
    assert_int_equal(load(MINIMAL "master_start_timeout: 30\n"), 0);
    assert_int_equal(c.primary_start_timeout_s, 30);
    assert_conf_error(
        MINIMAL "primary_start_timeout: 5m\n",
        "t.yaml:9:24: primary_start_timeout: expected an integer 0..86400, got \"5m\"");
    assert_conf_error(
        MINIMAL "primary_start_timeout: -1\n",
        "t.yaml:9:24: primary_start_timeout: expected an integer 0..86400, got \"-1\"");
    assert_conf_error(MINIMAL "primary_start_timeout: 86401\n",
                      "t.yaml:9:24: primary_start_timeout: expected an integer 0..86400, got "
                      "\"86401\"");
    /* Patroni keeps it in bootstrap.dcs: each member's own here, as the top-level key. */
    assert_int_equal(load(MINIMAL "bootstrap:\n  dcs:\n    primary_start_timeout: 20\n"), 0);
    assert_int_equal(c.primary_start_timeout_s, 20);
    assert_int_equal(load(MINIMAL "bootstrap:\n  dcs:\n    master_start_timeout: 40\n"), 0);
    assert_int_equal(c.primary_start_timeout_s, 40);
    assert_conf_error(MINIMAL "primary_start_timeout: 5\n"
                              "bootstrap:\n  dcs:\n    primary_start_timeout: 20\n",
                      "t.yaml:12:28: bootstrap.dcs.primary_start_timeout: 20 differs from "
                      "primary_start_timeout at t.yaml:9:24 (5): give it in one place");
    assert_conf_error(MINIMAL "bootstrap:\n  dcs:\n    primary_start_timeout: 20\n"
                              "    master_start_timeout: 30\n",
                      "t.yaml:12:27: bootstrap.dcs.master_start_timeout: is "
                      "primary_start_timeout's old name: set only one of them");
    assert_conf_error(MINIMAL "master_start_timeout: 5\n"
                              "bootstrap:\n  dcs:\n    primary_start_timeout: 20\n",
                      "t.yaml:12:28: bootstrap.dcs.primary_start_timeout: 20 differs from "
                      "master_start_timeout at t.yaml:9:23 (5): give it in one place");
    assert_conf_error(MINIMAL "primary_start_timeout: 5\nmaster_start_timeout: 5\n",
                      "t.yaml:10:23: master_start_timeout: is primary_start_timeout's old name: "
                      "set only one of them");
}

static void test_watchdog_wrong_mode_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "watchdog:\n"
                              "  mode: on\n",
                      "t.yaml:10:9: watchdog.mode: expected one of off|automatic|required, got "
                      "\"on\"");
}

static void test_watchdog_unknown_key_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "watchdog:\n"
                              "  mode: automatic\n"
                              "  timeout: 10\n",
                      "t.yaml:11:3: watchdog.timeout: unknown key");
}

static void test_watchdog_small_safety_margin_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "watchdog: {safety_margin: 99}\n",
                      "t.yaml:9:27: watchdog.safety_margin: expected an integer 100..60000, got "
                      "\"99\"");
}

static void test_watchdog_relative_device_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "watchdog: {mode: automatic, device: watchdog0}\n",
                      "t.yaml:9:37: watchdog.device: expected an absolute path, got "
                      "\"watchdog0\"");
}

/* ---- error: types --------------------------------------------------------------------------- */

static void test_word_for_integer_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  election_timeout: fast\n" MEMBERS,
                      "t.yaml:5:21: raft.election_timeout: expected an integer 50..60000, got "
                      "\"fast\"");
}

static void test_integer_below_range_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  election_timeout: 10\n" MEMBERS,
                      "t.yaml:5:21: raft.election_timeout: expected an integer 50..60000, got "
                      "\"10\"");
}

/* Patroni's user tags: any other key under tags is kept as written; the known ones are still
 * checked, whatever user tags stand beside them. */
static void test_user_tags_are_kept(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "tags:\n"
                                  "  datacenter: west\n"
                                  "  nofailover: true\n"
                                  "  clonefrom: true\n"
                                  "  rack.row: 12\n"),
                     0);
    assert_true(c.tags.nofailover);
    assert_int_equal(c.tags.n_user, 3);
    assert_string_equal(c.tags.user[0].key, "datacenter");
    assert_string_equal(c.tags.user[0].value, "west");
    assert_string_equal(c.tags.user[1].key, "clonefrom");
    assert_string_equal(c.tags.user[1].value, "true");
    assert_string_equal(c.tags.user[2].key, "rack.row");
    assert_string_equal(c.tags.user[2].value, "12");
    conf_free(&c);
    assert_conf_error(MINIMAL "tags:\n"
                              "  datacenter: west\n"
                              "  failover_priority: high\n",
                      "t.yaml:11:22: tags.failover_priority: expected an integer 0..1000, got "
                      "\"high\"");
}

static void test_bad_user_tags_are_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "tags:\n"
                              "  datacenter: west\n"
                              "  datacenter: east\n",
                      "t.yaml:11:3: tags.datacenter: duplicate key");
    assert_conf_error(MINIMAL "tags:\n"
                              "  zone: [a, b]\n",
                      "t.yaml:10:9: tags.zone: expected a scalar (a user tag's value), got a "
                      "sequence");
    assert_conf_error(MINIMAL "tags:\n"
                              "  bad-name: x\n",
                      "t.yaml:10:3: tags.bad-name: expected a key of 1..63 characters from "
                      "[A-Za-z0-9_.] (a user tag) or one of the known keys");
}

static void test_integer_above_range_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "tags:\n"
                              "  failover_priority: 1001\n",
                      "t.yaml:10:22: tags.failover_priority: expected an integer 0..1000, got "
                      "\"1001\"");
}

static void test_huge_integer_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  heartbeat_timeout: 99999999999999999999999\n" MEMBERS,
                      "t.yaml:5:22: raft.heartbeat_timeout: expected an integer 10..10000, got "
                      "\"99999999999999999999999\"");
}

static void test_negative_integer_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "tags:\n"
                              "  failover_priority: -1\n",
                      "t.yaml:10:22: tags.failover_priority: expected an integer 0..1000, got "
                      "\"-1\"");
}

static void test_integer_with_leading_zero_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  election_timeout: 0500\n" MEMBERS,
                      "t.yaml:5:21: raft.election_timeout: expected an integer 50..60000, got "
                      "\"0500\"");
}

static void test_mapping_for_scalar_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  election_timeout:\n"
                           "    ms: 500\n" MEMBERS,
                      "t.yaml:6:5: raft.election_timeout: expected a scalar, got a mapping");
}

static void test_sequence_for_scalar_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: [a, b]\n", "t.yaml:1:8: scope: expected a scalar, got a sequence");
}

static void test_scalar_for_section_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "tags: none\n", "t.yaml:9:7: tags: expected a mapping, got a scalar");
}

static void test_scalar_for_members_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members: node1\n",
                      "t.yaml:5:12: raft.members: expected a sequence, got a scalar");
}

static void test_scalar_member_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - node1\n",
                      "t.yaml:6:7: raft.members[0]: expected a mapping, got a scalar");
}

static void test_bad_bool_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  pre_vote: maybe\n" MEMBERS,
                      "t.yaml:5:13: raft.pre_vote: expected true or false (or yes/no, on/off), "
                      "got \"maybe\"");
}

static void test_bad_enum_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "log:\n"
                              "  level: verbose\n",
                      "t.yaml:10:10: log.level: expected one of debug|info|warning|error, got "
                      "\"verbose\"");
}

static void test_relative_path_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node1\n"
                      "raft:\n"
                      "  data_dir: var/lib/raftpg\n" MEMBERS,
                      "t.yaml:4:13: raft.data_dir: expected an absolute path, got "
                      "\"var/lib/raftpg\"");
}

static void test_name_with_bad_character_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node/1\n",
                      "t.yaml:2:7: name: expected a name of 1..63 characters from "
                      "[A-Za-z0-9_.-], got \"node/1\"");
}

static void test_empty_name_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope:\n", "t.yaml:1:7: scope: expected a name of 1..63 characters from "
                                  "[A-Za-z0-9_.-], got \"\"");
}

static void test_name_of_64_characters_is_rejected(void **state)
{
    (void)state;
    /* 64 characters; 63 is the limit. The echo is cut at 40. */
    assert_conf_error("scope: abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd\n",
                      "t.yaml:1:8: scope: expected a name of 1..63 characters from "
                      "[A-Za-z0-9_.-], got \"abcdefghijabcdefghijabcdefghijabcdefghij...\"");
}

static void test_name_of_63_characters_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(load("scope: abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc\n"
                          "name: node1\n"
                          "raft:\n"
                          "  data_dir: /d\n" MEMBERS),
                     0);
    assert_int_equal(strlen(c.scope), 63);
}

static void test_long_password_is_rejected_without_echo(void **state)
{
    (void)state;
    char text[4096];
    char password[301];
    memset(password, 'x', 300);
    password[300] = '\0';
    snprintf(text, sizeof text,
             MINIMAL "postgresql:\n"
                     "  data_dir: /pg\n"
                     "  listen: 127.0.0.1:5433\n"
                     "  authentication:\n"
                     "    superuser:\n"
                     "      password: %s\n",
             password);
    assert_conf_error(text, "t.yaml:14:17: postgresql.authentication.superuser.password: expected "
                            "0..255 bytes, got 300");
}

static void test_empty_username_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  authentication:\n"
                              "    replication: {username: ''}\n",
                      "t.yaml:13:29: postgresql.authentication.replication.username: expected "
                      "1..63 bytes, got 0");
}

static void test_control_character_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: \"node\\0x\"\n",
                      "t.yaml:2:7: name: expected text without control characters");
}

static void test_alias_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: &s demo\n"
                      "name: *s\n",
                      "t.yaml:2:7: name: aliases are not supported");
}

/* ---- error: addresses ----------------------------------------------------------------------- */

static void test_host_name_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "restapi:\n"
                              "  listen: localhost:8001\n",
                      "t.yaml:10:11: restapi.listen: expected IPv4 address:port, got "
                      "\"localhost:8001\"");
}

static void test_ipv6_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: \"[::1]:7001\"\n",
                      "t.yaml:7:13: raft.members[0].raft: expected IPv4 address:port, got "
                      "\"[::1]:7001\"");
}

static void test_wildcard_member_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 0.0.0.0:8001\n",
                      "t.yaml:8:12: raft.members[0].api: expected an address other nodes can "
                      "connect to, got \"0.0.0.0:8001\"");
}

static void test_wildcard_listen_needs_connect_address(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 0.0.0.0:5432\n",
                      "t.yaml:11:11: postgresql.connect_address: required when postgresql.listen "
                      "is 0.0.0.0 (listen=0.0.0.0:5432)");
}

/* ---- error: members ------------------------------------------------------------------------- */

static void test_duplicate_member_name_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - {name: node1, raft: 127.0.0.1:7001, api: 127.0.0.1:8001}\n"
                           "    - {name: node2, raft: 127.0.0.1:7002, api: 127.0.0.1:8002}\n"
                           "    - {name: node1, raft: 127.0.0.1:7003, api: 127.0.0.1:8003}\n",
                      "t.yaml:8:14: raft.members[2].name: duplicate member name \"node1\"");
}

static void test_duplicate_raft_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 127.0.0.1:8001\n"
                           "    - name: node2\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 127.0.0.1:8002\n",
                      "t.yaml:10:13: raft.members[1].raft: duplicate raft address "
                      "\"127.0.0.1:7001\"");
}

static void test_duplicate_api_address_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members:\n"
                           "    - name: node1\n"
                           "      raft: 127.0.0.1:7001\n"
                           "      api: 127.0.0.1:8001\n"
                           "    - api: 127.0.0.1:8001\n"
                           "      raft: 127.0.0.1:7002\n"
                           "      name: node2\n",
                      "t.yaml:9:12: raft.members[1].api: duplicate api address "
                      "\"127.0.0.1:8001\"");
}

static void test_empty_members_are_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  members: []\n",
                      "t.yaml:5:12: raft.members: expected 1..9 members, got 0");
}

static void test_ten_members_are_rejected(void **state)
{
    (void)state;
    char text[2048];
    size_t n = (size_t)snprintf(text, sizeof text, HEAD "  members:\n");
    for (int i = 1; i <= 10; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "    - {name: n%d, raft: 127.0.0.1:70%02d, api: 127.0.0.1:80%02d}\n",
                              i, i, i);
    }
    assert_conf_error(text, "t.yaml:15:7: raft.members: expected 1..9 members, got more");
}

/* ---- error: checks across keys -------------------------------------------------------------- */

static void test_heartbeat_of_half_election_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  heartbeat_timeout: 250\n"
                           "  election_timeout: 500\n" MEMBERS,
                      "t.yaml:5:22: raft.heartbeat_timeout: must be less than half of "
                      "raft.election_timeout (heartbeat_timeout=250 election_timeout=500)");
}

static void test_heartbeat_just_below_half_election_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(load(HEAD "  heartbeat_timeout: 249\n" MEMBERS), 0);
    assert_int_equal(c.raft.heartbeat_timeout_ms, 249);
}

static void test_default_heartbeat_against_short_election_is_reported_at_election(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  election_timeout: 200\n" MEMBERS,
                      "t.yaml:5:21: raft.heartbeat_timeout: must be less than half of "
                      "raft.election_timeout (heartbeat_timeout=100 election_timeout=200)");
}

static void test_raft_listen_must_equal_member_address(void **state)
{
    (void)state;
    assert_conf_error(HEAD "  listen: 127.0.0.1:7009\n" MEMBERS,
                      "t.yaml:5:11: raft.listen: must equal this member's address "
                      "raft.members[0].raft (listen=127.0.0.1:7009 raft=127.0.0.1:7001)");
}

static void test_joiner_without_raft_listen_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node4\n"
                      "raft:\n"
                      "  data_dir: /d\n" MEMBERS "restapi:\n"
                      "  listen: 127.0.0.1:8004\n",
                      "t.yaml:4:3: raft.listen: required when name is not in raft.members "
                      "(name=node4)");
}

static void test_joiner_without_restapi_listen_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node4\n"
                      "raft:\n"
                      "  listen: 127.0.0.1:7004\n"
                      "  data_dir: /d\n" MEMBERS,
                      "t.yaml:1:1: restapi.listen: required when name is not in raft.members "
                      "(name=node4)");
}

static void test_joiner_wildcard_restapi_listen_needs_connect_address(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: node4\n"
                      "raft:\n"
                      "  listen: 127.0.0.1:7004\n"
                      "  data_dir: /d\n" MEMBERS "restapi:\n"
                      "  listen: 0.0.0.0:8004\n",
                      "t.yaml:11:11: restapi.connect_address: required when restapi.listen is "
                      "0.0.0.0 (listen=0.0.0.0:8004)");
}

/* ---- error: parameters and pg_hba ----------------------------------------------------------- */

static void test_parameter_value_must_be_scalar(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  parameters:\n"
                              "    shared_buffers: {size: 128MB}\n",
                      "t.yaml:13:21: postgresql.parameters.shared_buffers: expected a scalar, "
                      "got a mapping");
}

static void test_duplicate_parameter_ignores_case(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  parameters:\n"
                              "    work_mem: 4MB\n"
                              "    Work_Mem: 8MB\n",
                      "t.yaml:14:5: postgresql.parameters.Work_Mem: duplicate key");
}

static void test_bad_parameter_name_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  parameters:\n"
                              "    \"work mem\": 4MB\n",
                      "t.yaml:13:5: postgresql.parameters: expected a parameter name, got "
                      "\"work mem\"");
}

static void test_multi_line_parameter_value_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  parameters:\n"
                              "    work_mem: \"4MB\\nfsync = off\"\n",
                      "t.yaml:13:15: postgresql.parameters.work_mem: expected text without "
                      "control characters");
}

static void test_parameters_are_capped_at_1000(void **state)
{
    (void)state;
    static const char head[] = MINIMAL "postgresql:\n"
                                       "  data_dir: /pg\n"
                                       "  listen: 127.0.0.1:5433\n"
                                       "  parameters:\n";
    size_t size = sizeof head + 1001 * 16;
    char *text = malloc(size);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, size, "%s", head);
    for (int i = 0; i < 1001; i++) {
        n += (size_t)snprintf(text + n, size - n, "    p%d: %d\n", i, i);
    }
    int rv = load(text);
    free(text);
    assert_int_equal(rv, RPG_ECONFIG);
    assert_string_equal(errmsg,
                        "t.yaml:1013:5: postgresql.parameters: expected at most 1000 parameters");
}

static void test_pg_hba_entry_must_be_scalar(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  pg_hba:\n"
                              "    - local all all trust\n"
                              "    - [host, all]\n",
                      "t.yaml:14:7: postgresql.pg_hba[1]: expected a scalar, got a sequence");
}

static void test_pg_hba_must_be_sequence(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "postgresql:\n"
                              "  data_dir: /pg\n"
                              "  listen: 127.0.0.1:5433\n"
                              "  pg_hba: local all all trust\n",
                      "t.yaml:12:11: postgresql.pg_hba: expected a sequence, got a scalar");
}

/* ---- error: documents and files ------------------------------------------------------------- */

static void test_yaml_syntax_error_is_reported(void **state)
{
    (void)state;
    /* libyaml first reads "demo name" as the scope; the syntax error must win over that. */
    assert_conf_error("scope: demo\n"
                      " name: node1\n",
                      "t.yaml:2:6: invalid YAML: mapping values are not allowed in this context");
}

static void test_invalid_utf8_is_reported_with_position(void **state)
{
    (void)state;
    assert_conf_error("scope: demo\n"
                      "name: \xff\n",
                      "t.yaml:2:7: invalid YAML: invalid leading UTF-8 octet");
}

static void test_empty_text_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("", "t.yaml:1:1: empty configuration, expected a mapping");
}

static void test_comment_only_text_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("# nothing here\n\n", "t.yaml:1:1: empty configuration, expected a mapping");
}

static void test_empty_document_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("---\n", "t.yaml:1:1: empty configuration, expected a mapping");
}

static void test_top_level_scalar_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("\nhello\n", "t.yaml:2:1: expected a mapping at the top level, got a scalar");
}

static void test_top_level_sequence_is_rejected(void **state)
{
    (void)state;
    assert_conf_error("- scope: demo\n",
                      "t.yaml:1:1: expected a mapping at the top level, got a sequence");
}

static void test_second_document_is_rejected(void **state)
{
    (void)state;
    assert_conf_error(MINIMAL "---\n"
                              "scope: other\n",
                      "t.yaml:9:1: expected one YAML document, got more");
}

static void test_missing_file_is_reported(void **state)
{
    (void)state;
    assert_int_equal(conf_load("/nonexistent/raftpg.yaml", &c, errmsg), RPG_ECONFIG);
    assert_string_equal(errmsg, "/nonexistent/raftpg.yaml: cannot read: No such file or directory");
}

static void test_directory_is_reported(void **state)
{
    (void)state;
    assert_int_equal(conf_load("/", &c, errmsg), RPG_ECONFIG);
    assert_string_equal(errmsg, "/: cannot read: Is a directory");
}

static void test_file_is_loaded(void **state)
{
    (void)state;
    char path[64];
    write_temp(full, sizeof full - 1, path);
    int rv = conf_load(path, &c, errmsg);
    unlink(path);
    assert_int_equal(rv, 0);
    assert_string_equal(c.path, path);
    assert_string_equal(c.name, "node2");
    assert_int_equal(c.postgresql.n_parameters, 3);
}

static void test_file_error_names_the_file(void **state)
{
    (void)state;
    char path[64], expected[RPG_ERRMSG_SIZE];
    static const char text[] = HEAD "  election_timeout: fast\n" MEMBERS;
    write_temp(text, sizeof text - 1, path);
    int rv = conf_load(path, &c, errmsg);
    unlink(path);
    assert_int_equal(rv, RPG_ECONFIG);
    snprintf(expected, sizeof expected,
             "%s:5:21: raft.election_timeout: expected an integer 50..60000, got \"fast\"", path);
    assert_string_equal(errmsg, expected);
}

static void test_file_with_nul_byte_is_rejected(void **state)
{
    (void)state;
    char path[64], expected[RPG_ERRMSG_SIZE];
    static const char text[] = "scope: de\0mo\n";
    write_temp(text, sizeof text - 1, path);
    int rv = conf_load(path, &c, errmsg);
    unlink(path);
    assert_int_equal(rv, RPG_ECONFIG);
    snprintf(expected, sizeof expected, "%s:1:10: invalid YAML: control characters are not allowed",
             path);
    assert_string_equal(errmsg, expected);
}

static void test_oversized_file_is_rejected(void **state)
{
    (void)state;
    char path[64], expected[RPG_ERRMSG_SIZE];
    size_t len = 1024 * 1024 + 1;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, '#', len);
    write_temp(text, len, path);
    free(text);
    int rv = conf_load(path, &c, errmsg);
    unlink(path);
    assert_int_equal(rv, RPG_ECONFIG);
    snprintf(expected, sizeof expected, "%s: cannot read: larger than 1048576 bytes", path);
    assert_string_equal(errmsg, expected);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void test_free_is_safe_on_zeroed_struct_and_twice(void **state)
{
    (void)state;
    memset(&c, 0, sizeof c);
    conf_free(&c);
    assert_int_equal(load(full), 0);
    conf_free(&c);
    conf_free(&c);
    assert_int_equal(c.postgresql.n_parameters, 0);
    assert_null(c.postgresql.parameters);
    assert_string_equal(c.name, "");
}

static void test_failed_load_frees_and_zeroes(void **state)
{
    (void)state;
    /* Fails after parameters and pg_hba were allocated; LeakSanitizer checks the rest. */
    assert_int_equal(load(MINIMAL "postgresql:\n"
                                  "  data_dir: /pg\n"
                                  "  listen: 127.0.0.1:5433\n"
                                  "  parameters: {a: 1, b: 2}\n"
                                  "  pg_hba: [x, y]\n"
                                  "tags: {failover_priority: x}\n"),
                     RPG_ECONFIG);
    assert_int_equal(c.postgresql.n_parameters, 0);
    assert_null(c.postgresql.parameters);
    assert_int_equal(c.postgresql.n_pg_hba, 0);
    assert_null(c.postgresql.pg_hba);
    assert_string_equal(c.name, "");
}

/* ---- conf_parse_addr and names -------------------------------------------------------------- */

static void test_parse_addr_splits_host_and_port(void **state)
{
    (void)state;
    char host[16];
    uint16_t port = 0;
    assert_int_equal(conf_parse_addr("255.255.255.255:65535", host, &port), 0);
    assert_string_equal(host, "255.255.255.255");
    assert_int_equal(port, 65535);
    assert_int_equal(conf_parse_addr("0.0.0.0:1", host, &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 1);
    assert_int_equal(conf_parse_addr("10.1.20.3:5432", NULL, NULL), 0);
}

static void test_parse_addr_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ":5432",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999999999",
        "127.0.0.1:05432",
        "127.0.0.1:+80",
        "127.0.0.1:80 ",
        " 127.0.0.1:80",
        "127.0.0.1:80x",
        "256.0.0.1:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "01.2.3.4:80",
        "1..3.4:80",
        "1.2.3.-4:80",
        "1234.2.3.4:80",
        "localhost:80",
        "[::1]:80",
        "::1",
        "127.0.0.1:80:80",
    };
    char host[16] = "unchanged";
    uint16_t port = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (conf_parse_addr(bad[i], host, &port) != RPG_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    assert_int_equal(conf_parse_addr(NULL, host, &port), RPG_EINVAL);
    assert_string_equal(host, "unchanged");
    assert_int_equal(port, 7);
}

static void test_parse_cidr_splits_host_and_prefix(void **state)
{
    (void)state;
    char host[16];
    unsigned prefix = 0;
    assert_int_equal(conf_parse_cidr("255.255.255.255/32", host, &prefix), 0);
    assert_string_equal(host, "255.255.255.255");
    assert_int_equal(prefix, 32);
    assert_int_equal(conf_parse_cidr("10.231.0.100/1", host, &prefix), 0);
    assert_string_equal(host, "10.231.0.100");
    assert_int_equal(prefix, 1);
    assert_int_equal(conf_parse_cidr("0.0.0.0/8", NULL, NULL), 0);
}

static void test_parse_cidr_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "/24",
        "10.0.0.1",
        "10.0.0.1/",
        "10.0.0.1/0",
        "10.0.0.1/33",
        "10.0.0.1/08",
        "10.0.0.1/+8",
        "10.0.0.1/8 ",
        " 10.0.0.1/8",
        "10.0.0.1:80",
        "10.0.0/8",
        "256.0.0.1/8",
        "01.0.0.1/8",
        "10.0.0.1/8/8",
        "::1/128",
    };
    char host[16] = "unchanged";
    unsigned prefix = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (conf_parse_cidr(bad[i], host, &prefix) != RPG_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    assert_int_equal(conf_parse_cidr(NULL, host, &prefix), RPG_EINVAL);
    assert_string_equal(host, "unchanged");
    assert_int_equal(prefix, 7);
}

static void test_log_names_match_the_file_spellings(void **state)
{
    (void)state;
    assert_string_equal(conf_log_level_name(CONF_LOG_DEBUG), "debug");
    assert_string_equal(conf_log_level_name(CONF_LOG_INFO), "info");
    assert_string_equal(conf_log_level_name(CONF_LOG_WARNING), "warning");
    assert_string_equal(conf_log_level_name(CONF_LOG_ERROR), "error");
    assert_string_equal(conf_log_level_name((enum conf_log_level)42), "unknown");
    assert_string_equal(conf_log_format_name(CONF_LOG_TEXT), "text");
    assert_string_equal(conf_log_format_name(CONF_LOG_JSON), "json");
    assert_string_equal(conf_log_format_name((enum conf_log_format)99), "unknown");
    assert_string_equal(conf_watchdog_mode_name(CONF_WATCHDOG_OFF), "off");
    assert_string_equal(conf_watchdog_mode_name(CONF_WATCHDOG_AUTOMATIC), "automatic");
    assert_string_equal(conf_watchdog_mode_name(CONF_WATCHDOG_REQUIRED), "required");
    assert_string_equal(conf_watchdog_mode_name((enum conf_watchdog_mode)3), "unknown");
}

/* ---- shipped examples ----------------------------------------------------------------------- */

static void test_shipped_examples_load(void **state)
{
    (void)state;
    for (int i = 1; i <= 3; i++) {
        char path[PATH_MAX], want[64];
        snprintf(path, sizeof path, "%s/conf/node%d.yaml", RAFTPG_SOURCE_DIR, i);
        if (conf_load(path, &c, errmsg) != 0) {
            fail_msg("%s", errmsg);
        }
        snprintf(want, sizeof want, "node%d", i);
        assert_string_equal(c.name, want);
        assert_string_equal(c.scope, "demo");
        assert_int_equal(c.raft.n_members, 3);
        assert_ptr_equal(conf_self(&c), &c.raft.members[i - 1]);
        snprintf(want, sizeof want, "127.0.0.1:%d", 7000 + i);
        assert_string_equal(c.raft.listen, want);
        snprintf(want, sizeof want, "127.0.0.1:%d", 8000 + i);
        assert_string_equal(c.restapi.listen, want);
        assert_string_equal(c.restapi.connect_address, want);
        snprintf(want, sizeof want, "127.0.0.1:%d", 5432 + i);
        assert_string_equal(c.postgresql.listen, want);
        assert_string_equal(c.postgresql.connect_address, want);
        snprintf(want, sizeof want, "/tmp/raftpg-demo/node%d/raft", i);
        assert_string_equal(c.raft.data_dir, want);
        snprintf(want, sizeof want, "/tmp/raftpg-demo/node%d/pgdata", i);
        assert_string_equal(c.postgresql.data_dir, want);
        assert_true(c.has_postgresql);
        assert_false(c.has_vip);
        assert_int_equal(c.watchdog.mode, CONF_WATCHDOG_OFF);
        conf_free(&c);
    }
}

/* ---- robustness ----------------------------------------------------------------------------- */

/* Every outcome is success or a message naming the input; the sanitizers catch the rest. */
static void check_outcome(int rv)
{
    if (rv == 0) {
        conf_free(&c);
        return;
    }
    if (rv != RPG_ECONFIG) {
        fail_msg("rv=%d errmsg=%s", rv, errmsg);
    }
    if (strncmp(errmsg, "t.yaml:", 7) != 0) {
        fail_msg("errmsg=%s", errmsg);
    }
    assert_int_equal(c.postgresql.n_parameters, 0);
    assert_null(c.postgresql.parameters);
}

static void test_every_prefix_of_a_valid_file_is_handled(void **state)
{
    (void)state;
    char text[sizeof full];
    for (size_t n = 0; n < sizeof full; n++) {
        memcpy(text, full, n);
        text[n] = '\0';
        check_outcome(load(text));
    }
}

static void test_mutated_files_are_handled(void **state)
{
    (void)state;
    static const char bytes[] = ":-[]{},&*!|>'\"#%@` \t\n\\0?\xff\xc3";
    char text[sizeof full];
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(text, full, sizeof full);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % (sizeof full - 1);
            seed = seed * 1103515245u + 12345u;
            text[at] = bytes[(seed >> 8) % (sizeof bytes - 1)];
        }
        check_outcome(load(text));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_full_file_sets_every_value, teardown),
        cmocka_unit_test_teardown(test_minimal_file_gets_defaults, teardown),
        cmocka_unit_test_teardown(test_user_tags_are_kept, teardown),
        cmocka_unit_test_teardown(test_bad_user_tags_are_rejected, teardown),
        cmocka_unit_test_teardown(test_secret_file_is_read_when_private, teardown),
        cmocka_unit_test_teardown(test_secret_file_readable_by_others_is_refused, teardown),
        cmocka_unit_test_teardown(test_secret_file_must_hold_64_hex_digits, teardown),
        cmocka_unit_test_teardown(test_secret_file_of_another_user_is_refused_unless_any_owner,
                                  teardown),
        cmocka_unit_test_teardown(test_missing_secret_file_is_an_error_at_its_key, teardown),
        cmocka_unit_test_teardown(test_previous_secret_needs_a_primary_one, teardown),
        cmocka_unit_test_teardown(test_generated_secret_is_private_and_never_overwritten, teardown),
        cmocka_unit_test_teardown(test_postgresql_section_gets_defaults, teardown),
        cmocka_unit_test_teardown(test_basebackup_max_rate, teardown),
        cmocka_unit_test_teardown(test_recovery_conf_restore_command, teardown),
        cmocka_unit_test_teardown(test_member_restapi_listen_keeps_api_as_connect_address,
                                  teardown),
        cmocka_unit_test_teardown(test_booleans_accept_yaml_spellings, teardown),
        cmocka_unit_test_teardown(test_enums_are_case_insensitive, teardown),
        cmocka_unit_test_teardown(test_integer_range_bounds_are_inclusive, teardown),
        cmocka_unit_test_teardown(test_parameters_keep_text_and_order, teardown),
        cmocka_unit_test_teardown(test_nine_members_are_accepted, teardown),
        cmocka_unit_test_teardown(test_self_is_this_members_entry, teardown),
        cmocka_unit_test_teardown(test_joiner_has_no_self_and_keeps_its_listens, teardown),
        cmocka_unit_test_teardown(test_self_on_zeroed_struct_is_null, teardown),
        cmocka_unit_test_teardown(test_vip_and_watchdog_set_every_value, teardown),
        cmocka_unit_test_teardown(test_vip_section_gets_defaults, teardown),
        cmocka_unit_test_teardown(test_watchdog_modes_are_read, teardown),
        cmocka_unit_test_teardown(test_sync_settings_default_to_quorum_one_on, teardown),
        cmocka_unit_test_teardown(test_sync_settings_are_read, teardown),
        cmocka_unit_test_teardown(test_sync_wrong_values_are_rejected, teardown),
        cmocka_unit_test_teardown(test_max_lag_is_read, teardown),
        cmocka_unit_test_teardown(test_max_lag_wrong_values_are_rejected, teardown),
        cmocka_unit_test_teardown(test_bootstrap_dcs_seeds_the_dynamic_settings, teardown),
        cmocka_unit_test_teardown(test_bootstrap_post_bootstrap_and_post_init, teardown),
        cmocka_unit_test_teardown(test_bootstrap_users_is_refused, teardown),
        cmocka_unit_test_teardown(test_bootstrap_custom_method_is_read, teardown),
        cmocka_unit_test_teardown(test_bootstrap_custom_method_errors, teardown),
        cmocka_unit_test_teardown(test_bootstrap_dcs_and_top_level_must_agree, teardown),
        cmocka_unit_test_teardown(test_bootstrap_dcs_wrong_values_are_rejected, teardown),
        cmocka_unit_test_teardown(test_primary_start_timeout, teardown),
        cmocka_unit_test_teardown(test_vip_prefix_31_and_32_take_any_host, teardown),
        cmocka_unit_test_teardown(test_vip_interface_of_15_characters_is_accepted, teardown),
        cmocka_unit_test_teardown(test_unknown_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_unknown_top_level_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_unknown_member_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicate_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicate_key_in_section_is_rejected, teardown),
        cmocka_unit_test_teardown(test_non_scalar_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_missing_top_level_key_is_reported_at_the_mapping, teardown),
        cmocka_unit_test_teardown(test_missing_raft_section_is_rejected, teardown),
        cmocka_unit_test_teardown(test_missing_raft_data_dir_is_rejected, teardown),
        cmocka_unit_test_teardown(test_missing_member_key_is_reported_at_the_member, teardown),
        cmocka_unit_test_teardown(test_missing_postgresql_data_dir_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_address_without_prefix_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_address_malformed_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_prefix_out_of_range_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_address_must_be_unicast, teardown),
        cmocka_unit_test_teardown(test_vip_network_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_broadcast_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_member_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_own_postgresql_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_bad_interface_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_alias_interface_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_unknown_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_missing_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_missing_interface_is_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_counts_out_of_range_are_rejected, teardown),
        cmocka_unit_test_teardown(test_vip_announcements_must_fit_in_the_lifetime, teardown),
        cmocka_unit_test_teardown(test_vip_relative_binary_is_rejected, teardown),
        cmocka_unit_test_teardown(test_watchdog_wrong_mode_is_rejected, teardown),
        cmocka_unit_test_teardown(test_watchdog_unknown_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_watchdog_small_safety_margin_is_rejected, teardown),
        cmocka_unit_test_teardown(test_watchdog_relative_device_is_rejected, teardown),
        cmocka_unit_test_teardown(test_word_for_integer_is_rejected, teardown),
        cmocka_unit_test_teardown(test_integer_below_range_is_rejected, teardown),
        cmocka_unit_test_teardown(test_integer_above_range_is_rejected, teardown),
        cmocka_unit_test_teardown(test_huge_integer_is_rejected, teardown),
        cmocka_unit_test_teardown(test_negative_integer_is_rejected, teardown),
        cmocka_unit_test_teardown(test_integer_with_leading_zero_is_rejected, teardown),
        cmocka_unit_test_teardown(test_mapping_for_scalar_is_rejected, teardown),
        cmocka_unit_test_teardown(test_sequence_for_scalar_is_rejected, teardown),
        cmocka_unit_test_teardown(test_scalar_for_section_is_rejected, teardown),
        cmocka_unit_test_teardown(test_scalar_for_members_is_rejected, teardown),
        cmocka_unit_test_teardown(test_scalar_member_is_rejected, teardown),
        cmocka_unit_test_teardown(test_bad_bool_is_rejected, teardown),
        cmocka_unit_test_teardown(test_bad_enum_is_rejected, teardown),
        cmocka_unit_test_teardown(test_relative_path_is_rejected, teardown),
        cmocka_unit_test_teardown(test_name_with_bad_character_is_rejected, teardown),
        cmocka_unit_test_teardown(test_empty_name_is_rejected, teardown),
        cmocka_unit_test_teardown(test_name_of_64_characters_is_rejected, teardown),
        cmocka_unit_test_teardown(test_name_of_63_characters_is_accepted, teardown),
        cmocka_unit_test_teardown(test_long_password_is_rejected_without_echo, teardown),
        cmocka_unit_test_teardown(test_empty_username_is_rejected, teardown),
        cmocka_unit_test_teardown(test_control_character_is_rejected, teardown),
        cmocka_unit_test_teardown(test_alias_is_rejected, teardown),
        cmocka_unit_test_teardown(test_host_name_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_ipv6_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_wildcard_member_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_wildcard_listen_needs_connect_address, teardown),
        cmocka_unit_test_teardown(test_duplicate_member_name_is_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicate_raft_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicate_api_address_is_rejected, teardown),
        cmocka_unit_test_teardown(test_empty_members_are_rejected, teardown),
        cmocka_unit_test_teardown(test_ten_members_are_rejected, teardown),
        cmocka_unit_test_teardown(test_heartbeat_of_half_election_is_rejected, teardown),
        cmocka_unit_test_teardown(test_heartbeat_just_below_half_election_is_accepted, teardown),
        cmocka_unit_test_teardown(
            test_default_heartbeat_against_short_election_is_reported_at_election, teardown),
        cmocka_unit_test_teardown(test_raft_listen_must_equal_member_address, teardown),
        cmocka_unit_test_teardown(test_joiner_without_raft_listen_is_rejected, teardown),
        cmocka_unit_test_teardown(test_joiner_without_restapi_listen_is_rejected, teardown),
        cmocka_unit_test_teardown(test_joiner_wildcard_restapi_listen_needs_connect_address,
                                  teardown),
        cmocka_unit_test_teardown(test_parameter_value_must_be_scalar, teardown),
        cmocka_unit_test_teardown(test_duplicate_parameter_ignores_case, teardown),
        cmocka_unit_test_teardown(test_bad_parameter_name_is_rejected, teardown),
        cmocka_unit_test_teardown(test_multi_line_parameter_value_is_rejected, teardown),
        cmocka_unit_test_teardown(test_parameters_are_capped_at_1000, teardown),
        cmocka_unit_test_teardown(test_pg_hba_entry_must_be_scalar, teardown),
        cmocka_unit_test_teardown(test_pg_hba_must_be_sequence, teardown),
        cmocka_unit_test_teardown(test_yaml_syntax_error_is_reported, teardown),
        cmocka_unit_test_teardown(test_invalid_utf8_is_reported_with_position, teardown),
        cmocka_unit_test_teardown(test_empty_text_is_rejected, teardown),
        cmocka_unit_test_teardown(test_comment_only_text_is_rejected, teardown),
        cmocka_unit_test_teardown(test_empty_document_is_rejected, teardown),
        cmocka_unit_test_teardown(test_top_level_scalar_is_rejected, teardown),
        cmocka_unit_test_teardown(test_top_level_sequence_is_rejected, teardown),
        cmocka_unit_test_teardown(test_second_document_is_rejected, teardown),
        cmocka_unit_test_teardown(test_missing_file_is_reported, teardown),
        cmocka_unit_test_teardown(test_directory_is_reported, teardown),
        cmocka_unit_test_teardown(test_file_is_loaded, teardown),
        cmocka_unit_test_teardown(test_file_error_names_the_file, teardown),
        cmocka_unit_test_teardown(test_file_with_nul_byte_is_rejected, teardown),
        cmocka_unit_test_teardown(test_oversized_file_is_rejected, teardown),
        cmocka_unit_test_teardown(test_free_is_safe_on_zeroed_struct_and_twice, teardown),
        cmocka_unit_test_teardown(test_failed_load_frees_and_zeroes, teardown),
        cmocka_unit_test_teardown(test_parse_addr_splits_host_and_port, teardown),
        cmocka_unit_test_teardown(test_parse_addr_rejects_malformed, teardown),
        cmocka_unit_test_teardown(test_parse_cidr_splits_host_and_prefix, teardown),
        cmocka_unit_test_teardown(test_parse_cidr_rejects_malformed, teardown),
        cmocka_unit_test_teardown(test_log_names_match_the_file_spellings, teardown),
        cmocka_unit_test_teardown(test_shipped_examples_load, teardown),
        cmocka_unit_test_teardown(test_every_prefix_of_a_valid_file_is_handled, teardown),
        cmocka_unit_test_teardown(test_mutated_files_are_handled, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
