/* Program runner against real child processes, each test on its own libuv loop. Results are
 * copied out of the callback and asserted after uv_run returns; a test that starts a process
 * which may outlive the run kills it by pid before asserting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/proc.h"

struct seen {
    struct proc_result res;
    char output[PROC_OUTPUT_MAX];
    char describe[512];
    int pid; /* the program's pid, which is also its process group */
};

struct fx {
    uv_loop_t loop;
    struct proc proc;
    struct seen seen[2];
    int calls;
    bool rerun; /* run a second program from inside the first callback */
    int rerun_rc;
    int fds_at_setup;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(struct proc *p, const struct proc_result *res, void *data)
{
    struct fx *f = data;
    assert_ptr_equal(p, &f->proc);
    if (f->calls < 2) {
        struct seen *s = &f->seen[f->calls];
        s->res = *res;
        snprintf(s->output, sizeof s->output, "%s", res->output);
        s->res.output = s->output;
        proc_describe(p, res, s->describe, sizeof s->describe);
        s->pid = p->pid;
    }
    f->calls++;

    if (f->rerun && f->calls == 1) {
        static char *const argv[] = {"/bin/echo", "second", NULL};
        char errmsg[RPG_ERRMSG_SIZE];
        f->rerun_rc = proc_run(p, &f->loop, argv, NULL, 5000, on_done, f, errmsg);
    }
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) != -1) {
            n++;
        }
    }
    return n;
}

/* libuv opens its process-wide signal pipe with the first loop; open it before any fd count. */
static int group_setup(void **state)
{
    uv_loop_t loop;
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->fds_at_setup = count_fds();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    /* Every handle and pipe end of every run must be closed by now. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(count_fds(), f->fds_at_setup);
    free(f);
    return 0;
}

/* Runs argv to completion on the test's loop. */
static void run(struct fx *f, char *const argv[], char *const env[], unsigned timeout_ms)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(proc_run(&f->proc, &f->loop, argv, env, timeout_ms, on_done, f, errmsg), 0);
    assert_true(f->proc.running);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_false(f->proc.running);
}

/* True once pid is gone or a zombie nobody has reaped yet. */
static bool pid_dead(int pid)
{
    char path[64], buf[256];
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return true;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return true;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static bool wait_dead(int pid, long deadline_ms)
{
    long until = now_ms() + deadline_ms;
    while (!pid_dead(pid)) {
        if (now_ms() > until) {
            return false;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static void test_exit_zero_captures_output(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/echo", "hello", NULL};
    run(f, argv, NULL, 5000);
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.exit_status, 0);
    assert_int_equal(s->res.term_signal, 0);
    assert_false(s->res.timed_out);
    assert_int_equal(s->res.spawn_error, 0);
    assert_string_equal(s->output, "hello");
    assert_true(proc_ok(&s->res));
    assert_string_equal(s->describe, "echo exited 0: hello");
}

static void test_nonzero_exit_status(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    run(f, argv, NULL, 5000);
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.exit_status, 3);
    assert_int_equal(s->res.term_signal, 0);
    assert_false(s->res.timed_out);
    assert_int_equal(s->res.spawn_error, 0);
    assert_string_equal(s->output, "");
    assert_false(proc_ok(&s->res));
    assert_string_equal(s->describe, "sh exited 3");
}

static void test_stderr_captured_with_stdout(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/sh", "-c", "echo out; echo 'could not start' >&2; exit 1", NULL};
    run(f, argv, NULL, 5000);
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.exit_status, 1);
    assert_string_equal(s->output, "out\ncould not start");
    assert_string_equal(s->describe, "sh exited 1: could not start");
}

static void test_env_entry_added_and_overrides_inherited(void **state)
{
    struct fx *f = *state;
    assert_int_equal(setenv("FOO", "inherited", 1), 0);
    assert_int_equal(setenv("RAFTPG_TEST_KEEP", "kept", 1), 0);
    char *const argv[] = {"/bin/sh", "-c", "echo \"$FOO $RAFTPG_TEST_KEEP\"", NULL};
    char *const env[] = {"FOO=bar", NULL};
    run(f, argv, env, 5000);
    unsetenv("FOO");
    unsetenv("RAFTPG_TEST_KEEP");
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->seen[0].res.exit_status, 0);
    assert_string_equal(f->seen[0].output, "bar kept");
}

/* PostgreSQL must not talk to the agent's systemd unit: it would report READY=1 and
 * STOPPING=1 as if it were the agent. */
static void test_env_drops_service_manager_variables(void **state)
{
    struct fx *f = *state;
    assert_int_equal(setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1), 0);
    assert_int_equal(setenv("WATCHDOG_USEC", "10000000", 1), 0);
    assert_int_equal(setenv("WATCHDOG_PID", "1", 1), 0);
    assert_int_equal(setenv("RAFTPG_TEST_KEEP", "kept", 1), 0);
    char *const argv[] = {"/bin/sh", "-c",
                          "echo \"${NOTIFY_SOCKET-none} ${WATCHDOG_USEC-none} ${WATCHDOG_PID-none} "
                          "$RAFTPG_TEST_KEEP\"",
                          NULL};
    char *const env[] = {"LC_ALL=C", NULL};
    run(f, argv, env, 5000);
    run(f, argv, NULL, 5000);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("RAFTPG_TEST_KEEP");
    assert_int_equal(f->calls, 2);
    assert_string_equal(f->seen[0].output, "none none none kept");
    assert_string_equal(f->seen[1].output, "none none none kept");
}

static void test_timeout_terminates_program(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/sleep", "30", NULL};
    long start = now_ms();
    run(f, argv, NULL, 200);
    long took = now_ms() - start;
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_true(s->res.timed_out);
    assert_int_equal(s->res.term_signal, SIGTERM);
    assert_int_equal(s->res.spawn_error, 0);
    assert_false(proc_ok(&s->res));
    /* The loop's clock may be a coarse one, a few ms behind CLOCK_MONOTONIC. */
    assert_in_range(took, 190, 200 + PROC_KILL_GRACE_MS);
    assert_in_range(s->res.elapsed_ms, 200, 200 + PROC_KILL_GRACE_MS);
    assert_string_equal(s->describe, "sleep timed out after 200 ms");
}

static void test_timeout_kills_after_grace_when_term_ignored(void **state)
{
    struct fx *f = *state;
    /* An ignored signal stays ignored across exec, so the sleep ignores SIGTERM too. */
    char *const argv[] = {"/bin/sh", "-c", "trap '' TERM; /bin/sleep 30 & echo $!; wait", NULL};
    f->proc.kill_grace_ms = 300;
    long start = now_ms();
    run(f, argv, NULL, 200);
    long took = now_ms() - start;
    struct seen *s = &f->seen[0];

    char *end;
    long pid = strtol(s->output, &end, 10);
    bool killed = pid > 1 && *end == '\0' && wait_dead((int)pid, 2000);
    if (pid > 1 && *end == '\0' && !killed) {
        kill((pid_t)pid, SIGKILL);
    }

    assert_int_equal(f->calls, 1);
    assert_true(s->res.timed_out);
    assert_int_equal(s->res.term_signal, SIGKILL);
    assert_in_range(took, 490, 500 + 1500);
    assert_in_range(s->res.elapsed_ms, 500, 500 + 1500);
    /* SIGKILL went to the whole group, so the sleep died with the shell. */
    assert_true(killed);
}

static void test_child_holding_output_does_not_block_completion(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/sh", "-c", "/bin/sleep 30 & echo $!", NULL};
    long start = now_ms();
    run(f, argv, NULL, 10000);
    long took = now_ms() - start;
    struct seen *s = &f->seen[0];

    /* Kill the grandchild first so a failed assertion does not leave it behind. */
    char *end;
    long pid = strtol(s->output, &end, 10);
    if (pid > 1 && *end == '\0') {
        kill((pid_t)pid, SIGKILL);
    } else if (s->pid > 1) {
        kill(-s->pid, SIGKILL);
    }
    assert_true(pid > 1);
    assert_int_equal(*end, '\0');
    assert_true(wait_dead((int)pid, 5000));

    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.exit_status, 0);
    assert_false(s->res.timed_out);
    assert_in_range(took, 0, 1999);
}

static void test_missing_binary_reports_spawn_error(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/nonexistent/raftpg-no-such-program", "x", NULL};
    run(f, argv, NULL, 5000);
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.spawn_error, UV_ENOENT);
    assert_int_equal(s->res.exit_status, -1);
    assert_false(s->res.timed_out);
    assert_false(proc_ok(&s->res));
    assert_string_equal(s->output, "");
    assert_string_equal(s->describe,
                        "cannot run raftpg-no-such-program: no such file or directory");
}

static void test_long_output_keeps_tail(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {
        "/bin/sh", "-c", "i=0; while [ $i -lt 4000 ]; do echo \"line $i\"; i=$((i+1)); done", NULL};
    run(f, argv, NULL, 10000);
    struct seen *s = &f->seen[0];
    assert_int_equal(f->calls, 1);
    assert_int_equal(s->res.exit_status, 0);

    static char all[65536];
    size_t len = 0;
    for (int i = 0; i < 4000; i++) {
        len += (size_t)snprintf(all + len, sizeof all - len, "line %d\n", i);
    }
    assert_true(len > PROC_OUTPUT_MAX);
    /* The last PROC_OUTPUT_MAX - 1 bytes, then without the final newline. */
    const char *tail = all + len - (PROC_OUTPUT_MAX - 1);
    all[len - 1] = '\0';
    assert_int_equal(strlen(s->output), PROC_OUTPUT_MAX - 2);
    assert_string_equal(s->output, tail);
    assert_string_equal(s->describe, "sh exited 0: line 3999");
}

/* The most recent output of a running program, oldest byte first, also across the ring's end. */
static void test_output_peek(void **state)
{
    (void)state;
    static struct proc p;
    char buf[8];
    memset(&p, 0, sizeof p);
    assert_int_equal(proc_output_peek(&p, buf, sizeof buf), 0); /* not running */
    assert_string_equal(buf, "");
    p.running = true;
    memcpy(p.output, "abc", 3);
    p.output_len = 3;
    assert_int_equal(proc_output_peek(&p, buf, sizeof buf), 3);
    assert_string_equal(buf, "abc");
    /* Wrapped: the ring's end holds "wxyz" (older), its start "abc" (newer). */
    memcpy(p.output + PROC_OUTPUT_MAX - 1 - 4, "wxyz", 4);
    p.output_wrapped = true;
    assert_int_equal(proc_output_peek(&p, buf, sizeof buf), 7);
    assert_string_equal(buf, "wxyzabc");
    char small[5];
    assert_int_equal(proc_output_peek(&p, small, sizeof small), 4);
    assert_string_equal(small, "zabc");
    char tiny[3];
    assert_int_equal(proc_output_peek(&p, tiny, sizeof tiny), 2);
    assert_string_equal(tiny, "bc");
}

static void test_run_while_running_is_busy(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/echo", "first", NULL};
    char *const argv2[] = {"/bin/echo", "second", NULL};
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(proc_run(&f->proc, &f->loop, argv, NULL, 5000, on_done, f, errmsg), 0);
    assert_int_equal(proc_run(&f->proc, &f->loop, argv2, NULL, 5000, on_done, f, errmsg),
                     RPG_EBUSY);
    assert_string_equal(errmsg, "cannot run /bin/echo: echo is still running");
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->seen[0].output, "first");
}

static void test_reuse_from_callback(void **state)
{
    struct fx *f = *state;
    char *const argv[] = {"/bin/sh", "-c", "echo first; exit 2", NULL};
    f->rerun = true;
    run(f, argv, NULL, 5000);
    assert_int_equal(f->rerun_rc, 0);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->seen[0].res.exit_status, 2);
    assert_string_equal(f->seen[0].output, "first");
    assert_string_equal(f->seen[0].describe, "sh exited 2: first");
    assert_int_equal(f->seen[1].res.exit_status, 0);
    assert_string_equal(f->seen[1].output, "second");
    assert_string_equal(f->seen[1].describe, "echo exited 0: second");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exit_zero_captures_output, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nonzero_exit_status, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stderr_captured_with_stdout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_env_entry_added_and_overrides_inherited, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_env_drops_service_manager_variables, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_terminates_program, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_after_grace_when_term_ignored, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_child_holding_output_does_not_block_completion,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_binary_reports_spawn_error, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_long_output_keeps_tail, fx_setup, fx_teardown),
        cmocka_unit_test(test_output_peek),
        cmocka_unit_test_setup_teardown(test_run_while_running_is_busy, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_from_callback, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
