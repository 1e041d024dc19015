/* Unit tests for pg's pure helpers: pg_parse_controldata on real pg_controldata output, and the
 * conninfo and postgresql.conf quoting functions at every buffer size around the fit.
 *
 * The controldata texts below were produced by PostgreSQL 15 (LC_ALL=C pg_controldata) on one
 * cluster made with initdb --data-checksums, in each state the agent can find a data directory
 * in. They keep the lines the parser reads and some of their neighbours, in the original order
 * and spacing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raftpg/pg.h"

/* The system identifier initdb chose for the cluster every captured text comes from. */
#define SYSID 7712437877340712033ULL

/* initdb --data-checksums, then stopped cleanly by pg_ctl stop. */
static const char CLEAN_PRIMARY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               shut down\n"
    "pg_control last modified:             Thu Nov 26 11:17:55 2026\n"
    "Latest checkpoint location:           0/17414D0\n"
    "Latest checkpoint's REDO location:    0/17414D0\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000001\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:17:55 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* The same cluster running as a primary. */
static const char RUNNING_PRIMARY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in production\n"
    "pg_control last modified:             Thu Nov 26 11:17:55 2026\n"
    "Latest checkpoint location:           0/17414D0\n"
    "Latest checkpoint's REDO location:    0/17414D0\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000001\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:17:55 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* A primary killed with SIGKILL after a write: the control file still says in production. */
static const char KILLED_PRIMARY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in production\n"
    "pg_control last modified:             Thu Nov 26 11:17:55 2026\n"
    "Latest checkpoint location:           0/2000060\n"
    "Latest checkpoint's REDO location:    0/2000028\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000002\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:17:55 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* pg_basebackup -R of the running primary, started as its standby. */
static const char RUNNING_STANDBY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in archive recovery\n"
    "pg_control last modified:             Thu Nov 26 11:17:55 2026\n"
    "Latest checkpoint location:           0/2000060\n"
    "Latest checkpoint's REDO location:    0/2000028\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000002\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:17:55 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/2000100\n"
    "Min recovery ending loc's timeline:   1\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* That standby stopped cleanly by pg_ctl stop -m fast. */
static const char CLEAN_STANDBY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               shut down in recovery\n"
    "pg_control last modified:             Thu Nov 26 11:17:57 2026\n"
    "Latest checkpoint location:           0/2000060\n"
    "Latest checkpoint's REDO location:    0/2000028\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000002\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:17:55 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/3000000\n"
    "Min recovery ending loc's timeline:   1\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* A cascading standby whose upstream was promoted to timeline 2, after a CHECKPOINT on the
 * standby: the restartpoint is the last checkpoint of timeline 1, but replay is past the switch. */
static const char STANDBY_PAST_SWITCH[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in archive recovery\n"
    "pg_control last modified:             Thu Nov 26 11:18:10 2026\n"
    "Latest checkpoint location:           0/3C68C88\n"
    "Latest checkpoint's REDO location:    0/3C68C50\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000003\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:18:09 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/48A7CA0\n"
    "Min recovery ending loc's timeline:   2\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* A standby just after pg_ctl promote, before its first checkpoint on timeline 2. */
static const char JUST_PROMOTED[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in production\n"
    "pg_control last modified:             Thu Nov 26 11:18:09 2026\n"
    "Latest checkpoint location:           0/3027AC0\n"
    "Latest checkpoint's REDO location:    0/3027AC0\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000003\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:18:08 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/48A7CA0\n"
    "Min recovery ending loc's timeline:   2\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* The promoted primary, SIGKILLed with its checkpointer while pg_ctl stop -m fast ran the
 * shutdown checkpoint. */
static const char KILLED_SHUTTING_DOWN[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               shutting down\n"
    "pg_control last modified:             Thu Nov 26 11:18:20 2026\n"
    "Latest checkpoint location:           0/ADD21D0\n"
    "Latest checkpoint's REDO location:    0/48A7CA0\n"
    "Latest checkpoint's REDO WAL file:    000000020000000000000004\n"
    "Latest checkpoint's TimeLineID:       2\n"
    "Latest checkpoint's PrevTimeLineID:   2\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:18:09 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* That primary restarted, SIGKILLed with its children while the startup process replayed. */
static const char KILLED_IN_CRASH_RECOVERY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712437877340712033\n"
    "Database cluster state:               in crash recovery\n"
    "pg_control last modified:             Thu Nov 26 11:18:25 2026\n"
    "Latest checkpoint location:           0/ADD21D0\n"
    "Latest checkpoint's REDO location:    0/48A7CA0\n"
    "Latest checkpoint's REDO WAL file:    000000020000000000000004\n"
    "Latest checkpoint's TimeLineID:       2\n"
    "Latest checkpoint's PrevTimeLineID:   2\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Time of latest checkpoint:            Thu Nov 26 11:18:09 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n";

/* What pg_controldata prints when the data directory is missing (exit status 1). */
static const char NO_DATA_DIR[] =
    "pg_controldata: error: could not open file \"/nonexistent/global/pg_control\" for reading: "
    "No such file or directory\n";

/* ---- pg_parse_controldata -------------------------------------------------------------------- */

struct parsed {
    int rc;
    uint64_t system_id;
    uint32_t timeline;
    bool was_primary;
    char errmsg[RPG_ERRMSG_SIZE];
};

/* Outputs start as values the parser never produces, so a test sees what it wrote; it parses
 * twice, with was_primary preset each way, so a parser that leaves it alone cannot pass. */
static struct parsed parse(const char *text)
{
    struct parsed r = {.system_id = 42, .timeline = 42, .was_primary = true};
    r.rc = pg_parse_controldata(text, &r.system_id, &r.timeline, &r.was_primary, r.errmsg);
    bool first = r.was_primary;
    r.was_primary = false;
    r.rc = pg_parse_controldata(text, &r.system_id, &r.timeline, &r.was_primary, r.errmsg);
    if (r.rc == 0) {
        assert_int_equal(first, r.was_primary);
    }
    return r;
}

/* text with every line that starts with label removed, in a static buffer. */
static const char *without_line(const char *text, const char *label)
{
    static char out[4096];
    size_t n = 0, len = strlen(label);
    while (*text != '\0') {
        const char *eol = strchr(text, '\n');
        size_t line = eol != NULL ? (size_t)(eol - text) + 1 : strlen(text);
        if (strncmp(text, label, len) != 0) {
            assert_true(n + line < sizeof out);
            memcpy(out + n, text, line);
            n += line;
        }
        text += line;
    }
    out[n] = '\0';
    return out;
}

/* text with the first occurrence of from replaced by to, in a static buffer. */
static const char *replaced(const char *text, const char *from, const char *to)
{
    static char out[4096];
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t head = (size_t)(at - text);
    assert_true(strlen(text) - strlen(from) + strlen(to) < sizeof out);
    snprintf(out, sizeof out, "%.*s%s%s", (int)head, text, to, at + strlen(from));
    return out;
}

/* The final checkpoint a switchover waits for: only a primary's clean shutdown counts. */
static void test_checkpoint_location(void **state)
{
    (void)state;
    uint64_t lsn = 42;
    bool down = false;
    assert_int_equal(pg_parse_checkpoint(CLEAN_PRIMARY, &lsn, &down), 0);
    assert_int_equal(lsn, 0x17414D0);
    assert_true(down);
    assert_int_equal(pg_parse_checkpoint(RUNNING_PRIMARY, &lsn, &down), 0);
    assert_false(down);
    assert_int_equal(pg_parse_checkpoint(KILLED_PRIMARY, &lsn, &down), 0);
    assert_false(down);
    assert_int_equal(pg_parse_checkpoint(CLEAN_STANDBY, &lsn, &down), 0);
    assert_false(down); /* "shut down in recovery" */
    assert_int_equal(pg_parse_checkpoint(replaced(CLEAN_PRIMARY, "0/17414D0\n", "1A/FFFF0028\n"),
                                         &lsn, &down),
                     0);
    assert_int_equal(lsn, (0x1AULL << 32) | 0xFFFF0028ULL);
    assert_int_equal(pg_parse_checkpoint(without_line(CLEAN_PRIMARY, "Latest checkpoint location"),
                                         &lsn, &down),
                     RPG_EPROTO);
    assert_int_equal(pg_parse_checkpoint(replaced(CLEAN_PRIMARY, "0/17414D0\n", "zz\n"), &lsn,
                                         &down),
                     RPG_EPROTO);
    assert_int_equal(pg_parse_checkpoint(NO_DATA_DIR, &lsn, &down), RPG_EPROTO);
}

/* Failed pg_controldata runs, as PostgreSQL 15 prints them (LC_ALL=C): only a missing or short
 * control file is a copy cut short; a permission or I/O error never leads to a re-clone. */
static void test_controldata_failures_are_classified(void **state)
{
    (void)state;
    assert_true(pg_controldata_cut_short(
        "pg_controldata: error: could not open file \"/srv/pg/global/pg_control\" for reading: "
        "No such file or directory\n"));
    assert_true(pg_controldata_cut_short(
        "pg_controldata: error: could not read file \"/srv/pg/global/pg_control\": read 100 of "
        "296\n"));
    assert_false(pg_controldata_cut_short(
        "pg_controldata: error: could not open file \"/srv/pg/global/pg_control\" for reading: "
        "Permission denied\n"));
    assert_false(pg_controldata_cut_short(
        "pg_controldata: error: could not read file \"/srv/pg/global/pg_control\": "
        "Input/output error\n"));
    assert_false(pg_controldata_cut_short("pg_controldata: error: no data directory specified\n"));
}

/* PostgreSQL 15's pg_wal/00000016.history as a standby fetched it in the chaos suite. */
static void test_history_switchpoints(void **state)
{
    (void)state;
    const char *h = "1\t0/3000148\tno recovery target specified\n"
                    "\n"
                    "# a comment\n"
                    "20\t0/8C1F2D8\tno recovery target specified\n"
                    "21\t0/8F2AFE0\tno recovery target specified\n";
    uint64_t lsn = 0;
    assert_int_equal(pg_history_switchpoint(h, 21, &lsn), 0);
    assert_int_equal(lsn, 0x8F2AFE0);
    assert_int_equal(pg_history_switchpoint(h, 1, &lsn), 0);
    assert_int_equal(lsn, 0x3000148);
    assert_int_equal(pg_history_switchpoint(h, 22, &lsn), -1);
    assert_int_equal(pg_history_switchpoint(h, 2, &lsn), -1);
    assert_int_equal(pg_history_switchpoint("", 1, &lsn), -1);
    assert_int_equal(pg_history_switchpoint("garbage\n21 x/y\n", 21, &lsn), -1);
}

static void test_rewind_retries_back_off(void **state)
{
    (void)state;
    assert_int_equal(pg_rewind_retry_delay(0), 1000);
    assert_int_equal(pg_rewind_retry_delay(1), 1000);
    assert_int_equal(pg_rewind_retry_delay(2), 2000);
    assert_int_equal(pg_rewind_retry_delay(5), 16000);
    assert_int_equal(pg_rewind_retry_delay(6), 30000);
    assert_int_equal(pg_rewind_retry_delay(1000000), 30000);
}

/* Failed pg_rewind runs, as PostgreSQL 15 prints them (LC_ALL=C): those that stopped before
 * changing the target are tried again; any other is no reason to trust the directory. */
static void test_rewind_failures_are_classified(void **state)
{
    (void)state;
    assert_true(pg_rewind_retryable(
        "pg_rewind: error: connection to server at \"127.0.0.1\", port 1 failed: Connection "
        "refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"));
    /* A killed postmaster that is still a zombie: its pid answers, single-user mode refuses. */
    assert_true(pg_rewind_retryable(
        "pg_rewind: executing \"/usr/lib/postgresql/15/bin/postgres\" for target server to "
        "complete crash recovery\n"
        "2026-12-06 00:49:09.996 UTC [2086] FATAL:  lock file \"postmaster.pid\" already "
        "exists\n"
        "2026-12-06 00:49:09.996 UTC [2086] HINT:  Is another postmaster (PID 1893) running in "
        "data directory \"/srv/pg\"?\n"
        "pg_rewind: error: postgres single-user mode in target cluster failed\n"
        "pg_rewind: detail: Command was: /usr/lib/postgresql/15/bin/postgres --single -F -D "
        "/srv/pg template1 < /dev/null\n"));
    assert_true(pg_rewind_retryable(
        "pg_rewind: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  the "
        "database system is starting up\n"));
    assert_true(pg_rewind_retryable("pg_rewind: error: source server must not be in recovery "
                                    "mode\n"));
    assert_false(
        pg_rewind_retryable("pg_rewind: servers diverged at WAL location 0/3000050 on timeline 2\n"
                            "pg_rewind: error: could not find previous WAL record at 0/3000050\n"));
    /* The connection lost after copying began: the directory is no longer consistent. */
    assert_false(pg_rewind_retryable(
        "pg_rewind: error: error running query (SELECT path, begin) in source server: server "
        "closed the connection unexpectedly\n"));
    assert_false(pg_rewind_retryable("pg_rewind: error: could not fetch remote file "
                                     "\"base/1/1259\": connection to server at \"127.0.0.1\" "
                                     "failed\n"));
    assert_false(pg_rewind_retryable(""));
    /* With --progress: the source stopped (its own fence) while pg_rewind read its file list,
     * before the point of no return. The failure lines were captured from PostgreSQL 15 in the
     * chaos testbed; the progress lines are those pg_rewind.c prints with --progress. */
    static const char SOURCE_STOPPED_READING[] =
        "pg_rewind: servers diverged at WAL location 0/5000000 on timeline 1\n"
        "pg_rewind: rewinding from last common checkpoint at 0/3000060 on timeline 1\n"
        "pg_rewind: reading source file list\n"
        "WARNING:  terminating connection due to immediate shutdown command\n"
        "pg_rewind: error: could not fetch file list: server closed the connection "
        "unexpectedly\n"
        "\tThis probably means the server terminated abnormally\n"
        "\tbefore or while processing the request.\n";
    assert_true(pg_rewind_retryable(SOURCE_STOPPED_READING));
    /* The same without the progress lines: nothing shows how far it got. */
    assert_false(pg_rewind_retryable(
        SOURCE_STOPPED_READING +
        strlen("pg_rewind: servers diverged at WAL location 0/5000000 on timeline 1\n"
               "pg_rewind: rewinding from last common checkpoint at 0/3000060 on timeline 1\n"
               "pg_rewind: reading source file list\n")));
    /* Past the point of no return. */
    assert_false(pg_rewind_retryable(
        "pg_rewind: reading source file list\n"
        "pg_rewind: reading target file list\n"
        "pg_rewind: reading WAL in target\n"
        "pg_rewind: need to copy 51 MB (total source directory size is 70 MB)\n"
        "12/52224 kB (0%) copied\n"
        "pg_rewind: error: error running query (SELECT path, begin) in source server: server "
        "closed the connection unexpectedly\n"));
}

/* A PostgreSQL 15 initdb without --data-checksums, running (the lines pg_rewind's check reads). */
static const char NO_CHECKSUMS_NO_HINTS[] = "Database cluster state:               in production\n"
                                            "wal_log_hints setting:                off\n"
                                            "Data page checksum version:           0\n";
static const char NO_CHECKSUMS_HINTS_ON[] = "Database cluster state:               shut down\n"
                                            "wal_log_hints setting:                on\n"
                                            "Data page checksum version:           0\n";

static void test_controldata_clean_shutdown_is_told_from_a_crash(void **state)
{
    (void)state;
    assert_true(pg_controldata_clean(CLEAN_PRIMARY));
    assert_true(pg_controldata_clean(CLEAN_STANDBY)); /* shut down in recovery */
    assert_false(pg_controldata_clean(KILLED_PRIMARY));
    assert_false(pg_controldata_clean(RUNNING_STANDBY));
    assert_false(pg_controldata_clean(KILLED_SHUTTING_DOWN));
    assert_false(pg_controldata_clean(KILLED_IN_CRASH_RECOVERY));
    assert_false(pg_controldata_clean(NO_DATA_DIR));
    assert_false(pg_controldata_clean(""));
}

static void test_controldata_rewind_prerequisites(void **state)
{
    (void)state;
    assert_true(pg_controldata_rewindable(CLEAN_PRIMARY)); /* data checksums */
    assert_true(pg_controldata_rewindable(NO_CHECKSUMS_HINTS_ON));
    assert_false(pg_controldata_rewindable(NO_CHECKSUMS_NO_HINTS));
    assert_false(pg_controldata_rewindable(NO_DATA_DIR));
}

static void test_rewind_args_restore_target_wal_only_with_restore_command(void **state)
{
    (void)state;
    static struct conf c;
    struct conf_kv params[2] = {{"wal_keep_size", "1GB"}, {"restore_command", "cp /a/%f %p"}};
    char *argv[8];
    memset(&c, 0, sizeof c);
    snprintf(c.postgresql.data_dir, sizeof c.postgresql.data_dir, "/var/lib/pg/data");
    c.postgresql.parameters = params;
    c.postgresql.n_parameters = 1;
    assert_int_equal(pg_rewind_args(&c, "/bin/pg_rewind", "--source-server=host=x", argv), 5);
    assert_string_equal(argv[0], "/bin/pg_rewind");
    assert_string_equal(argv[1], "--progress");
    assert_string_equal(argv[2], "-D");
    assert_string_equal(argv[3], "/var/lib/pg/data");
    assert_string_equal(argv[4], "--source-server=host=x");
    assert_null(argv[5]);
    assert_string_equal(pg_restore_command(&c), "");
    c.postgresql.n_parameters = 2;
    assert_int_equal(pg_rewind_args(&c, "/bin/pg_rewind", "--source-server=host=x", argv), 6);
    assert_string_equal(argv[1], "--restore-target-wal");
    assert_string_equal(argv[2], "--progress");
    assert_string_equal(argv[3], "-D");
    assert_string_equal(argv[4], "/var/lib/pg/data");
    assert_string_equal(argv[5], "--source-server=host=x");
    assert_null(argv[6]);
    assert_string_equal(pg_restore_command(&c), "cp /a/%f %p");
    /* Set to nothing, as a configuration may do to turn it off. */
    params[1].value = "";
    assert_int_equal(pg_rewind_args(&c, "/bin/pg_rewind", "--source-server=host=x", argv), 5);
    /* Patroni's postgresql.recovery_conf.restore_command comes first. */
    snprintf(c.postgresql.restore_command, sizeof c.postgresql.restore_command, "fetch %%f %%p");
    assert_int_equal(pg_rewind_args(&c, "/bin/pg_rewind", "--source-server=host=x", argv), 6);
    assert_string_equal(argv[1], "--restore-target-wal");
    assert_string_equal(pg_restore_command(&c), "fetch %f %p");
}

/* pg_basebackup --max-rate=10M --progress of a new cluster, captured from PostgreSQL 15 (stderr
 * not a terminal: one report a line). */
static const char BASEBACKUP_PROGRESS[] = "waiting for checkpoint\n"
                                          "10293/22942 kB (44%), 0/1 tablespace\n"
                                          "20968/22942 kB (91%), 0/1 tablespace\n"
                                          "22953/22953 kB (100%), 0/1 tablespace\n"
                                          "22953/22953 kB (100%), 1/1 tablespace";

static void test_basebackup_progress_takes_the_last_report(void **state)
{
    (void)state;
    uint64_t done = 0, total = 0;
    assert_false(pg_basebackup_progress("", &done, &total));
    assert_false(pg_basebackup_progress("waiting for checkpoint\n", &done, &total));
    assert_true(pg_basebackup_progress("waiting for checkpoint\n10293/22942 kB (44%), 0/1 "
                                       "tablespace\n",
                                       &done, &total));
    assert_int_equal(done, 10293);
    assert_int_equal(total, 22942);
    assert_true(pg_basebackup_progress(BASEBACKUP_PROGRESS, &done, &total));
    assert_int_equal(done, 22953);
    assert_int_equal(total, 22953);
    /* On a terminal the reports end with \r; a tail may begin mid-line. */
    assert_true(pg_basebackup_progress("42 kB (1%), 0/1 tablespace\r    17/900 kB (1%), 0/1 "
                                       "tablespace\r",
                                       &done, &total));
    assert_int_equal(done, 17);
    assert_int_equal(total, 900);
    assert_false(pg_basebackup_progress("12/34 MB\n", &done, &total));
}

/* pg_rewind --progress after a kill of the primary, in the form PostgreSQL 15 prints it:
 * the figures of its "need to copy" line. */
static void test_rewind_copy_size(void **state)
{
    (void)state;
    uint64_t copy = 0, total = 0;
    assert_true(pg_rewind_copy_size(
        "pg_rewind: servers diverged at WAL location 0/5000000 on timeline 1\n"
        "pg_rewind: rewinding from last common checkpoint at 0/3000060 on timeline 1\n"
        "pg_rewind: reading source file list\n"
        "pg_rewind: reading target file list\n"
        "pg_rewind: reading WAL in target\n"
        "pg_rewind: need to copy 51 MB (total source directory size is 70 MB)\n"
        "52224/52224 kB (100%) copied\n"
        "pg_rewind: creating backup label and updating control file\n"
        "pg_rewind: syncing target data directory\n"
        "pg_rewind: Done!\n",
        &copy, &total));
    assert_int_equal(copy, 51);
    assert_int_equal(total, 70);
    copy = total = 7;
    assert_false(pg_rewind_copy_size("pg_rewind: no rewind required\n", &copy, &total));
    assert_false(pg_rewind_copy_size("pg_rewind: need to copy 51 MB\n", &copy, &total));
    assert_false(pg_rewind_copy_size("", &copy, &total));
    assert_int_equal(copy, 7);
    assert_int_equal(total, 7);
}

static void test_rejoin_stage_names(void **state)
{
    (void)state;
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_NONE), "none");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_CHECK), "check");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_CRASH_RECOVER), "crash-recover");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_CHECKPOINT_SOURCE), "checkpoint-source");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_REWIND), "rewind");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_VERIFY_TIMELINE), "verify-timeline");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_REMOVE), "remove");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_MOVE_ASIDE), "move-aside");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_CLONE), "clone");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_START_STANDBY), "start-standby");
    assert_string_equal(pg_rejoin_stage_name(PG_REJOIN_STREAMING), "streaming");
}

static void test_controldata_cleanly_shut_down_primary_was_primary(void **state)
{
    (void)state;
    struct parsed r = parse(CLEAN_PRIMARY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_true(r.was_primary);
}

static void test_controldata_running_primary_was_primary(void **state)
{
    (void)state;
    struct parsed r = parse(RUNNING_PRIMARY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_true(r.was_primary);
}

static void test_controldata_killed_primary_was_primary(void **state)
{
    (void)state;
    struct parsed r = parse(KILLED_PRIMARY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_true(r.was_primary);
}

static void test_controldata_running_standby_was_not_primary(void **state)
{
    (void)state;
    struct parsed r = parse(RUNNING_STANDBY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_false(r.was_primary);
}

static void test_controldata_cleanly_shut_down_standby_was_not_primary(void **state)
{
    (void)state;
    struct parsed r = parse(CLEAN_STANDBY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_false(r.was_primary);
}

/* Only a primary writes "shutting down": it is set by the shutdown checkpoint, and a standby's
 * shutdown restartpoint never sets it. */
static void test_controldata_primary_killed_while_shutting_down_was_primary(void **state)
{
    (void)state;
    struct parsed r = parse(KILLED_SHUTTING_DOWN);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 2);
    assert_true(r.was_primary);
}

/* Crash recovery is what a server started without standby.signal does after a crash: it was
 * started as a primary, and the WAL it replays is its own. */
static void test_controldata_primary_killed_in_crash_recovery_was_primary(void **state)
{
    (void)state;
    struct parsed r = parse(KILLED_IN_CRASH_RECOVERY);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 2);
    assert_true(r.was_primary);
}

static void test_controldata_min_recovery_timeline_above_checkpoint_timeline_wins(void **state)
{
    (void)state;
    struct parsed r = parse(STANDBY_PAST_SWITCH);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 2);
    assert_false(r.was_primary);
}

static void test_controldata_promoted_primary_before_checkpoint_is_on_new_timeline(void **state)
{
    (void)state;
    struct parsed r = parse(JUST_PROMOTED);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 2);
    assert_true(r.was_primary);
}

static void
test_controldata_min_recovery_timeline_below_checkpoint_timeline_is_ignored(void **state)
{
    (void)state;
    const char *text = replaced(STANDBY_PAST_SWITCH, "Latest checkpoint's TimeLineID:       1",
                                "Latest checkpoint's TimeLineID:       3");
    struct parsed r = parse(text);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.timeline, 3);
}

static void test_controldata_without_min_recovery_timeline_uses_checkpoint_timeline(void **state)
{
    (void)state;
    struct parsed r = parse(without_line(STANDBY_PAST_SWITCH, "Min recovery ending loc's"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.system_id, SYSID);
    assert_int_equal(r.timeline, 1);
    assert_false(r.was_primary);
}

/* Identifiers made after January 2038 have the top bit set. */
static void test_controldata_system_identifier_above_int64_max_is_read_unsigned(void **state)
{
    (void)state;
    const char *text = replaced(CLEAN_PRIMARY, "7712437877340712033", "18446744073709551615");
    struct parsed r = parse(text);
    assert_int_equal(r.rc, 0);
    assert_true(r.system_id == UINT64_MAX);
}

static void test_controldata_without_system_identifier_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse(without_line(CLEAN_PRIMARY, "Database system identifier:"));
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

/* The PrevTimeLineID line that stays behind must not be taken for the timeline. */
static void test_controldata_without_timeline_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse(without_line(CLEAN_PRIMARY, "Latest checkpoint's TimeLineID:"));
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no latest checkpoint timeline");
}

static void test_controldata_without_cluster_state_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse(without_line(CLEAN_PRIMARY, "Database cluster state:"));
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database cluster state");
}

static void test_controldata_non_numeric_system_identifier_is_eproto(void **state)
{
    (void)state;
    const char *text = replaced(CLEAN_PRIMARY, "7712437877340712033", "unknown");
    struct parsed r = parse(text);
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

static void test_controldata_non_numeric_timeline_is_eproto(void **state)
{
    (void)state;
    const char *text = replaced(CLEAN_PRIMARY, "Latest checkpoint's TimeLineID:       1",
                                "Latest checkpoint's TimeLineID:       -1");
    struct parsed r = parse(text);
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no latest checkpoint timeline");
}

/* Output cut off right after a label, as when the program is killed mid-write. */
static void test_controldata_cut_after_identifier_label_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse("pg_control version number:            1300\n"
                            "Catalog version number:               202209061\n"
                            "Database system identifier:");
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

static void test_controldata_error_output_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse(NO_DATA_DIR);
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

static void test_controldata_empty_text_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse("");
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

static void test_controldata_binary_garbage_is_eproto(void **state)
{
    (void)state;
    struct parsed r = parse("\x7f"
                            "ELF\x02\x01\x01\xff\xfe:::\n\t\t: 12\n");
    assert_int_equal(r.rc, RPG_EPROTO);
    assert_string_equal(r.errmsg, "pg_controldata: no database system identifier");
}

/* ---- pg_conninfo_quote and pg_conf_quote ----------------------------------------------------- */

typedef bool (*quote_fn)(const char *s, char *buf, size_t size);

#define CANARY ((char)0x5a)

struct quoted {
    bool ok;
    char text[256]; /* the buffer's contents when ok */
    bool canary_intact;
};

/* Quotes s into a heap buffer of exactly size bytes followed by one canary byte, so a write past
 * the end shows as a changed canary (and under ASan as an overflow of the allocation). */
static struct quoted quote(quote_fn fn, const char *s, size_t size)
{
    struct quoted q = {0};
    char *mem = malloc(size + 1);
    assert_non_null(mem);
    memset(mem, 'x', size);
    mem[size] = CANARY;
    q.ok = fn(s, mem, size);
    q.canary_intact = mem[size] == CANARY;
    if (q.ok) {
        assert_true(memchr(mem, '\0', size) != NULL);
        snprintf(q.text, sizeof q.text, "%s", mem);
    }
    free(mem);
    return q;
}

/* Every size below expected's fit fails, the exact fit and one more succeed with expected, and
 * no size writes past the buffer. */
static void check_every_size(quote_fn fn, const char *s, const char *expected)
{
    size_t fit = strlen(expected) + 1;
    for (size_t size = 0; size < fit; size++) {
        struct quoted q = quote(fn, s, size);
        if (q.ok) {
            fail_msg("size %zu: expected failure, got \"%s\"", size, q.text);
        }
        assert_true(q.canary_intact);
    }
    for (size_t size = fit; size <= fit + 1; size++) {
        struct quoted q = quote(fn, s, size);
        assert_true(q.ok);
        assert_string_equal(q.text, expected);
        assert_true(q.canary_intact);
    }
}

/* ---- pg_passfile_escape ---------------------------------------------------------------------- */

static void test_passfile_escape_plain_value(void **state)
{
    (void)state;
    struct quoted q = quote(pg_passfile_escape, "s3cret", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "s3cret");
}

static void test_passfile_escape_escapes_colon_and_backslash(void **state)
{
    (void)state;
    struct quoted q = quote(pg_passfile_escape, "a:b\\c", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "a\\:b\\\\c");
}

static void test_passfile_escape_keeps_quotes_spaces_and_star(void **state)
{
    (void)state;
    struct quoted q = quote(pg_passfile_escape, "it's *= \"x\"", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "it's *= \"x\"");
}

static void test_passfile_escape_refuses_newline(void **state)
{
    (void)state;
    struct quoted q = quote(pg_passfile_escape, "pass\nword", 64);
    assert_false(q.ok);
    assert_true(q.canary_intact);
}

static void test_passfile_escape_refuses_carriage_return(void **state)
{
    (void)state;
    struct quoted q = quote(pg_passfile_escape, "pass\rword", 64);
    assert_false(q.ok);
    assert_true(q.canary_intact);
}

static void test_passfile_escape_escaped_value_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_passfile_escape, "a:\\", "a\\:\\\\");
}

static void test_passfile_escape_empty_string_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_passfile_escape, "", "");
}

static void test_conninfo_quote_plain_value(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conninfo_quote, "node1", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'node1'");
}

static void test_conninfo_quote_escapes_single_quote_with_backslash(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conninfo_quote, "it's", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'it\\'s'");
}

static void test_conninfo_quote_escapes_backslash(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conninfo_quote, "a\\b", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'a\\\\b'");
}

static void test_conninfo_quote_keeps_spaces_and_equals(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conninfo_quote, "p w=x", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'p w=x'");
}

static void test_conninfo_quote_empty_string(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conninfo_quote, "", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "''");
}

static void test_conninfo_quote_plain_value_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conninfo_quote, "abc", "'abc'");
}

static void test_conninfo_quote_escaped_value_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conninfo_quote, "a'b\\", "'a\\'b\\\\'");
}

static void test_conninfo_quote_empty_string_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conninfo_quote, "", "''");
}

static void test_conf_quote_plain_value(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "/var/run/postgresql", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'/var/run/postgresql'");
}

static void test_conf_quote_doubles_single_quote(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "it's", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'it''s'");
}

static void test_conf_quote_escapes_backslash(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "a\\b", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'a\\\\b'");
}

/* primary_conninfo is a conninfo quoted again for postgresql.conf. */
static void test_conf_quote_of_quoted_conninfo_escapes_both_layers(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "password='it\\'s'", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'password=''it\\\\''s'''");
}

static void test_conf_quote_empty_string(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "''");
}

/* PostgreSQL's configuration lexer ends a quoted string at a newline: postgres refuses to start
 * with "syntax error in file ... near token" when one is written raw. \n is its escape for it. */
static void test_conf_quote_escapes_newline(void **state)
{
    (void)state;
    struct quoted q = quote(pg_conf_quote, "a\nb", 64);
    assert_true(q.ok);
    assert_string_equal(q.text, "'a\\nb'");
}

static void test_conf_quote_plain_value_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conf_quote, "abc", "'abc'");
}

static void test_conf_quote_escaped_value_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conf_quote, "a'b\\", "'a''b\\\\'");
}

static void test_conf_quote_empty_string_fits_exactly_and_not_one_byte_less(void **state)
{
    (void)state;
    check_every_size(pg_conf_quote, "", "''");
}

/* ---- timeline reservations ---------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool readable(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

static void test_reservations_fill_the_ids_between_and_go_at_the_next_start(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_pg_XXXXXX", wal[64], path[128], buf[512], errmsg[RPG_ERRMSG_SIZE];
    assert_non_null(mkdtemp(dir));
    snprintf(wal, sizeof wal, "%s/pg_wal", dir);
    assert_int_equal(mkdir(wal, 0700), 0);
    /* Timeline 3 is a real history this server has; 2, 4 and 5 it never saw. */
    snprintf(path, sizeof path, "%s/00000003.history", wal);
    write_text(path, "1\t0/3000000\tno recovery target specified\n");

    /* Promoting from timeline 1 to 6: 2, 4 and 5 are reserved, 3 left alone. */
    assert_int_equal(pg_reserve_timelines(dir, 1, 6, errmsg), 0);
    snprintf(path, sizeof path, "%s/00000002.history", wal);
    assert_true(readable(path, buf, sizeof buf));
    assert_non_null(strstr(buf, PG_RESERVED_TIMELINE_MARK));
    assert_non_null(strstr(buf, "timeline 2"));
    /* Comments only: PostgreSQL reads no parent from it. */
    for (const char *line = buf; *line != '\0'; line = strchr(line, '\n') + 1) {
        assert_int_equal(line[0], '#');
        if (strchr(line, '\n') == NULL) {
            break;
        }
    }
    snprintf(path, sizeof path, "%s/00000004.history", wal);
    assert_true(readable(path, buf, sizeof buf));
    snprintf(path, sizeof path, "%s/00000005.history", wal);
    assert_true(readable(path, buf, sizeof buf));
    snprintf(path, sizeof path, "%s/00000006.history", wal);
    assert_false(readable(path, buf, sizeof buf));
    snprintf(path, sizeof path, "%s/00000003.history", wal);
    assert_true(readable(path, buf, sizeof buf));
    assert_string_equal(buf, "1\t0/3000000\tno recovery target specified\n");

    /* Nothing to reserve: the next id is the one asked for, or no id was asked for. */
    assert_int_equal(pg_reserve_timelines(dir, 5, 6, errmsg), 0);
    assert_int_equal(pg_reserve_timelines(dir, 7, 0, errmsg), 0);
    assert_int_equal(pg_reserve_timelines(dir, 0, 9, errmsg), 0);
    snprintf(path, sizeof path, "%s/00000008.history", wal);
    assert_false(readable(path, buf, sizeof buf));

    /* A start removes the reservations and nothing else. */
    pg_drop_reservations(dir);
    for (unsigned tli = 2; tli <= 5; tli++) {
        snprintf(path, sizeof path, "%s/%08X.history", wal, tli);
        assert_int_equal(readable(path, buf, sizeof buf), tli == 3);
    }
    snprintf(path, sizeof path, "%s/00000003.history", wal);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(wal), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_reservation_in_a_missing_directory_says_where(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(pg_reserve_timelines("/nonexistent/raftpg", 1, 3, errmsg), RPG_EIO);
    assert_non_null(strstr(errmsg, "/nonexistent/raftpg/pg_wal/00000002.history"));
    pg_drop_reservations("/nonexistent/raftpg"); /* nothing to do, and no crash */
}

/* ---- the dynamic parameters ---------------------------------------------------------------- */

static void test_param_owned_names_what_raftpg_writes(void **state)
{
    (void)state;
    const char *owned[] = {"listen_addresses",
                           "port",
                           "cluster_name",
                           "hot_standby",
                           "primary_conninfo",
                           "primary_slot_name",
                           "synchronous_standby_names",
                           "synchronous_commit",
                           "recovery_target_timeline",
                           "recovery_target_lsn",
                           "restore_command",
                           "default_transaction_read_only",
                           "unix_socket_directories",
                           "include_dir",
                           "PRIMARY_CONNINFO"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        assert_non_null(pg_param_owned(owned[i]));
    }
    assert_string_equal(pg_param_owned("synchronous_standby_names"),
                        "raftpg manages it (synchronous_mode and synchronous_node_count)");
    const char *free_names[] = {"work_mem",
                                "shared_buffers",
                                "max_wal_senders",
                                "recovery",
                                "portal",
                                "wal_retrieve_retry_interval",
                                "pg_stat_statements.max"};
    for (size_t i = 0; i < sizeof free_names / sizeof free_names[0]; i++) {
        assert_null(pg_param_owned(free_names[i]));
    }
}

static void test_param_cluster_wide(void **state)
{
    (void)state;
    assert_true(pg_param_cluster_wide("max_connections"));
    assert_true(pg_param_cluster_wide("MAX_WAL_SENDERS"));
    assert_true(pg_param_cluster_wide("wal_level"));
    assert_false(pg_param_cluster_wide("work_mem"));
    assert_false(pg_param_cluster_wide("shared_buffers"));
}

/* The member's own postgresql.parameters win over a dynamic value, except a cluster-wide one;
 * values are quoted. */
static void test_params_block_precedence_and_quoting(void **state)
{
    (void)state;
    static struct conf c;
    struct conf_kv local[2] = {{"shared_buffers", "16MB"}, {"max_wal_senders", "10"}};
    memset(&c, 0, sizeof c);
    c.postgresql.parameters = local;
    c.postgresql.n_parameters = 2;
    struct fsm_param ps[4];
    memset(ps, 0, sizeof ps);
    snprintf(ps[0].name, sizeof ps[0].name, "log_line_prefix");
    snprintf(ps[0].value, sizeof ps[0].value, "%%m [%%p] it's ");
    snprintf(ps[1].name, sizeof ps[1].name, "max_wal_senders");
    snprintf(ps[1].value, sizeof ps[1].value, "12");
    snprintf(ps[2].name, sizeof ps[2].name, "shared_buffers");
    snprintf(ps[2].value, sizeof ps[2].value, "32MB");
    snprintf(ps[3].name, sizeof ps[3].name, "work_mem");
    snprintf(ps[3].value, sizeof ps[3].value, "8MB");
    char buf[PG_PARAMS_BLOCK_MAX];
    assert_true(pg_params_block(&c, ps, 4, buf, sizeof buf));
    assert_string_equal(buf, "# raftpg dynamic parameters\n"
                             "log_line_prefix = '%m [%p] it''s '\n"
                             "max_wal_senders = '12'\n"
                             "# shared_buffers: set by this member's postgresql.parameters, which "
                             "win\n"
                             "work_mem = '8MB'\n"
                             "# end of raftpg dynamic parameters\n");
    assert_true(pg_params_block(&c, ps, 0, buf, sizeof buf));
    assert_string_equal(buf, PG_PARAMS_BEGIN PG_PARAMS_END);
    assert_false(pg_params_block(&c, ps, 4, buf, 60));

    /* The largest set fits the bound. */
    static struct fsm_param big[FSM_PARAMS_MAX];
    for (unsigned i = 0; i < FSM_PARAMS_MAX; i++) {
        memset(big[i].name, 'a', FSM_PARAM_NAME_MAX - 1);
        memset(big[i].value, '\'', FSM_PARAM_VALUE_MAX - 1);
    }
    static char large[PG_PARAMS_BLOCK_MAX];
    assert_true(pg_params_block(&c, big, FSM_PARAMS_MAX, large, sizeof large));
}

/* pg_settings as the observer reads it. */
static const char SETTINGS[] = "checkpoint_completion_target sighup real - 0 1\n"
                               "checkpoint_timeout sighup integer s 30 86400\n"
                               "default_transaction_isolation user enum - - - serializable|"
                               "repeatable read|read committed|read uncommitted\n"
                               "fsync sighup bool - - -\n"
                               "max_wal_senders postmaster integer - 0 262143\n"
                               "search_path user string - - -\n"
                               "shared_buffers postmaster integer 8kB 16 1073741823\n"
                               "work_mem user integer kB 64 2147483647";

static void test_setting_check_names_and_types(void **state)
{
    (void)state;
    char ctx[32], why[RPG_ERRMSG_SIZE];
    assert_int_equal(pg_setting_check(NULL, "work_mem", "8MB", ctx, sizeof ctx, why, sizeof why),
                     -1);
    assert_int_equal(
        pg_setting_check(SETTINGS, "work_mme", "8MB", ctx, sizeof ctx, why, sizeof why), 0);
    assert_int_equal(pg_setting_check(SETTINGS, "work", "8MB", ctx, sizeof ctx, why, sizeof why),
                     0);
    struct {
        const char *name, *value;
        int rc;
    } cases[] = {
        {"work_mem", "8MB", 1},
        {"work_mem", "8192", 1},
        {"work_mem", " 8 MB ", 1},
        {"work_mem", "0x100", 1},
        {"work_mem", "0x10", RPG_EINVAL},
        {"work_mem", "1.5GB", 1},
        {"work_mem", "8Mb", RPG_EINVAL},
        {"work_mem", "8ms", RPG_EINVAL},
        {"work_mem", "abc", RPG_EINVAL},
        {"work_mem", "", RPG_EINVAL},
        {"shared_buffers", "128MB", 1},
        {"max_wal_senders", "12", 1},
        {"max_wal_senders", "12kB", RPG_EINVAL},
        {"checkpoint_timeout", "5min", 1},
        {"checkpoint_timeout", "300", 1},
        {"checkpoint_timeout", "5MB", RPG_EINVAL},
        {"checkpoint_completion_target", "0.9", 1},
        {"checkpoint_completion_target", "1e-1", 1},
        {"checkpoint_completion_target", "high", RPG_EINVAL},
        {"fsync", "on", 1},
        {"fsync", "OFF", 1},
        {"fsync", "of", 1},
        {"fsync", "t", 1},
        {"fsync", "0", 1},
        {"fsync", "o", RPG_EINVAL},
        {"fsync", "maybe", RPG_EINVAL},
        {"default_transaction_isolation", "Read Committed", 1},
        {"default_transaction_isolation", "snapshot", RPG_EINVAL},
        {"search_path", "\"$user\", public", 1},
        /* Ranges, in the setting's own unit after conversion. */
        {"work_mem", "64kB", 1},
        {"work_mem", "63kB", RPG_EINVAL},
        {"work_mem", "32", RPG_EINVAL},
        {"work_mem", "1TB", 1},
        {"work_mem", "2TB", RPG_EINVAL},
        {"shared_buffers", "128kB", 1},
        {"shared_buffers", "64kB", RPG_EINVAL},
        {"shared_buffers", "15", RPG_EINVAL},
        {"checkpoint_timeout", "30s", 1},
        {"checkpoint_timeout", "29999ms", 1},
        {"checkpoint_timeout", "29ms", RPG_EINVAL},
        {"checkpoint_timeout", "1d", 1},
        {"checkpoint_timeout", "2d", RPG_EINVAL},
        {"checkpoint_completion_target", "1", 1},
        {"checkpoint_completion_target", "1.5", RPG_EINVAL},
        {"checkpoint_completion_target", "-0.1", RPG_EINVAL},
        {"max_wal_senders", "262143", 1},
        {"max_wal_senders", "262144", RPG_EINVAL},
        {"max_wal_senders", "-1", RPG_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = pg_setting_check(SETTINGS, cases[i].name, cases[i].value, ctx, sizeof ctx, why,
                                  sizeof why);
        if (rc != cases[i].rc) {
            fail_msg("%s = '%s': got %d, expected %d", cases[i].name, cases[i].value, rc,
                     cases[i].rc);
        }
    }
    assert_int_equal(
        pg_setting_check(SETTINGS, "shared_buffers", "1GB", ctx, sizeof ctx, why, sizeof why), 1);
    assert_string_equal(ctx, "postmaster");
    assert_int_equal(pg_setting_check(SETTINGS, "work_mem", "abc", ctx, sizeof ctx, why,
                                      sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "invalid value \"abc\": expected an integer in units of kB");
    assert_int_equal(pg_setting_check(SETTINGS, "shared_buffers", "64kB", ctx, sizeof ctx, why,
                                      sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "invalid value \"64kB\": 8 8kB is outside the valid range 16 .. "
                             "1073741823 8kB");
    assert_int_equal(pg_setting_check(SETTINGS, "max_wal_senders", "-1", ctx, sizeof ctx, why,
                                      sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "invalid value \"-1\": -1 is outside the valid range 0 .. 262143");
    assert_int_equal(pg_setting_check(SETTINGS, "default_transaction_isolation", "snapshot", ctx,
                                      sizeof ctx, why, sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "invalid value \"snapshot\" (expected one of: serializable|repeatable "
                             "read|read committed|read uncommitted)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controldata_failures_are_classified),
        cmocka_unit_test(test_rewind_failures_are_classified),
        cmocka_unit_test(test_rewind_retries_back_off),
        cmocka_unit_test(test_history_switchpoints),
        cmocka_unit_test(test_controldata_cleanly_shut_down_primary_was_primary),
        cmocka_unit_test(test_controldata_clean_shutdown_is_told_from_a_crash),
        cmocka_unit_test(test_controldata_rewind_prerequisites),
        cmocka_unit_test(test_rewind_args_restore_target_wal_only_with_restore_command),
        cmocka_unit_test(test_basebackup_progress_takes_the_last_report),
        cmocka_unit_test(test_rewind_copy_size),
        cmocka_unit_test(test_rejoin_stage_names),
        cmocka_unit_test(test_reservations_fill_the_ids_between_and_go_at_the_next_start),
        cmocka_unit_test(test_reservation_in_a_missing_directory_says_where),
        cmocka_unit_test(test_controldata_running_primary_was_primary),
        cmocka_unit_test(test_controldata_killed_primary_was_primary),
        cmocka_unit_test(test_controldata_running_standby_was_not_primary),
        cmocka_unit_test(test_controldata_cleanly_shut_down_standby_was_not_primary),
        cmocka_unit_test(test_controldata_primary_killed_while_shutting_down_was_primary),
        cmocka_unit_test(test_controldata_primary_killed_in_crash_recovery_was_primary),
        cmocka_unit_test(test_controldata_min_recovery_timeline_above_checkpoint_timeline_wins),
        cmocka_unit_test(test_controldata_promoted_primary_before_checkpoint_is_on_new_timeline),
        cmocka_unit_test(
            test_controldata_min_recovery_timeline_below_checkpoint_timeline_is_ignored),
        cmocka_unit_test(test_controldata_without_min_recovery_timeline_uses_checkpoint_timeline),
        cmocka_unit_test(test_controldata_system_identifier_above_int64_max_is_read_unsigned),
        cmocka_unit_test(test_controldata_without_system_identifier_is_eproto),
        cmocka_unit_test(test_controldata_without_timeline_is_eproto),
        cmocka_unit_test(test_controldata_without_cluster_state_is_eproto),
        cmocka_unit_test(test_controldata_non_numeric_system_identifier_is_eproto),
        cmocka_unit_test(test_controldata_non_numeric_timeline_is_eproto),
        cmocka_unit_test(test_controldata_cut_after_identifier_label_is_eproto),
        cmocka_unit_test(test_controldata_error_output_is_eproto),
        cmocka_unit_test(test_controldata_empty_text_is_eproto),
        cmocka_unit_test(test_controldata_binary_garbage_is_eproto),
        cmocka_unit_test(test_conninfo_quote_plain_value),
        cmocka_unit_test(test_conninfo_quote_escapes_single_quote_with_backslash),
        cmocka_unit_test(test_conninfo_quote_escapes_backslash),
        cmocka_unit_test(test_conninfo_quote_keeps_spaces_and_equals),
        cmocka_unit_test(test_conninfo_quote_empty_string),
        cmocka_unit_test(test_conninfo_quote_plain_value_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_conninfo_quote_escaped_value_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_conninfo_quote_empty_string_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_conf_quote_plain_value),
        cmocka_unit_test(test_conf_quote_doubles_single_quote),
        cmocka_unit_test(test_param_owned_names_what_raftpg_writes),
        cmocka_unit_test(test_param_cluster_wide),
        cmocka_unit_test(test_params_block_precedence_and_quoting),
        cmocka_unit_test(test_setting_check_names_and_types),
        cmocka_unit_test(test_conf_quote_escapes_backslash),
        cmocka_unit_test(test_conf_quote_of_quoted_conninfo_escapes_both_layers),
        cmocka_unit_test(test_conf_quote_empty_string),
        cmocka_unit_test(test_conf_quote_escapes_newline),
        cmocka_unit_test(test_conf_quote_plain_value_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_conf_quote_escaped_value_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_conf_quote_empty_string_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_passfile_escape_plain_value),
        cmocka_unit_test(test_passfile_escape_escapes_colon_and_backslash),
        cmocka_unit_test(test_passfile_escape_keeps_quotes_spaces_and_star),
        cmocka_unit_test(test_passfile_escape_refuses_newline),
        cmocka_unit_test(test_checkpoint_location),
        cmocka_unit_test(test_passfile_escape_refuses_carriage_return),
        cmocka_unit_test(test_passfile_escape_escaped_value_fits_exactly_and_not_one_byte_less),
        cmocka_unit_test(test_passfile_escape_empty_string_fits_exactly_and_not_one_byte_less),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
