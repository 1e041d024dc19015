/* Log lines: identical repeats are limited, different lines are not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "raftpg/log.h"

/* Runs fn with stderr sent to a file; returns how many lines contained needle. */
static unsigned count_lines(void (*fn)(void), const char *needle)
{
    char path[] = "/tmp/raftpg-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    unsigned n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    unlink(path);
    return n;
}

static void repeat_same(void)
{
    for (int i = 0; i < 400; i++) {
        log_warning("sync_slots: replication slots differ from the members");
    }
}

static void repeat_different(void)
{
    for (int i = 0; i < 40; i++) {
        log_info("rewind %d done", i);
    }
}

static void test_identical_lines_are_limited(void **state)
{
    (void)state;
    unsigned n = count_lines(repeat_same, "replication slots differ");
    assert_in_range(n, 1, 10);
}

static void test_different_lines_all_print(void **state)
{
    (void)state;
    assert_int_equal(count_lines(repeat_different, "done"), 40);
}

int main(void)
{
    log_setup("test", LOG_INFO, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_lines_are_limited),
        cmocka_unit_test(test_different_lines_all_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
