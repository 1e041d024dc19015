/* ctl's subcommand table (ctl.h ctl_command_row): every row runs something, every listed row has
 * its line in the usage that `raftpg ctl --help` prints, with its arguments and description,
 * and the dispatch finds each row by its words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/ctl.h"

/* The usage as `raftpg ctl --help` prints it. */
static char usage[32768];

static const char *usage_text(void)
{
    memset(usage, 0, sizeof usage);
    FILE *f = fmemopen(usage, sizeof usage - 1, "w");
    assert_non_null(f);
    ctl_print_usage(f);
    assert_int_equal(fclose(f), 0);
    assert_true(strlen(usage) > 0 && strlen(usage) < sizeof usage - 2);
    return usage;
}

/* The usage's line for a row: "  NAME[ SUB]" then a space or the line's end. */
static const char *command_line(const char *text, const struct ctl_command_row *r)
{
    char words[128];
    snprintf(words, sizeof words, "\n  %s%s%s", r->name, r->sub != NULL ? " " : "",
             r->sub != NULL ? r->sub : "");
    for (const char *p = strstr(text, words); p != NULL; p = strstr(p + 1, words)) {
        char next = p[strlen(words)];
        if (next == ' ' || next == '\n') {
            return p + 1;
        }
    }
    return NULL;
}

static void test_every_row_runs_something(void **state)
{
    (void)state;
    struct ctl_command_row r;
    unsigned n = 0;
    for (unsigned i = 0; ctl_command_row(i, &r); i++, n++) {
        assert_non_null(r.name);
        assert_true(r.name[0] != '\0');
        assert_true(r.runs);
        assert_true(r.help == NULL || r.help[0] != '\0');
    }
    assert_true(n > 10);
}

/* A listed row's words and first line of arguments on one line of the usage, and each line of
 * its description in the usage; the commands section lists nothing else. */
static void test_each_listed_row_has_its_usage_line(void **state)
{
    (void)state;
    const char *text = usage_text();
    struct ctl_command_row r;
    unsigned listed = 0;
    for (unsigned i = 0; ctl_command_row(i, &r); i++) {
        if (r.help == NULL) {
            continue;
        }
        listed++;
        const char *line = command_line(text, &r);
        if (line == NULL) {
            fail_msg("no usage line for %s%s%s", r.name, r.sub != NULL ? " " : "",
                     r.sub != NULL ? r.sub : "");
        }
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        if (r.args != NULL) {
            size_t first = strcspn(r.args, "\n");
            char *want = strndup(r.args, first);
            const char *at = strstr(line, want);
            assert_true(at != NULL && at < eol);
            free(want);
        }
        /* The row's block: up to the next command's line, or the section's end. */
        const char *end = eol;
        while (end[1] == ' ' && end[2] == ' ' && end[3] == ' ') {
            end = strchr(end + 1, '\n');
            assert_non_null(end);
        }
        for (const char *p = r.help; *p != '\0';) {
            size_t len = strcspn(p, "\n");
            char *want = strndup(p, len);
            const char *at = strstr(line, want);
            assert_true(at != NULL && at < end);
            free(want);
            p += len + (p[len] == '\n');
        }
    }
    /* Lines of the commands section that start a command: two spaces, then a letter. */
    const char *from = strstr(text, "\ncommands:\n");
    const char *to = strstr(text, "\noptions:\n");
    assert_true(from != NULL && to != NULL && from < to);
    unsigned shown = 0;
    for (const char *p = from + 1; p != NULL && p < to; p = strchr(p, '\n')) {
        p++;
        if (p[0] == ' ' && p[1] == ' ' && p[2] >= 'a' && p[2] <= 'z') {
            shown++;
        }
    }
    assert_int_equal(shown, listed);
}

/* The dispatch finds each listed row by its words; an unlisted row answers for its first word
 * followed by a second word that no listed row has, and nothing answers for an unknown one. */
static void test_dispatch_finds_each_row(void **state)
{
    (void)state;
    struct ctl_command_row r;
    for (unsigned i = 0; ctl_command_row(i, &r); i++) {
        char *argv[] = {(char *)(r.sub != NULL ? r.sub : "x"), NULL};
        if (r.help != NULL) {
            assert_int_equal(ctl_command_lookup(r.name, r.sub != NULL ? 1 : 0, argv), (int)i);
            continue;
        }
        assert_null(r.sub);
        char *other[] = {(char *)"no-such-word", NULL};
        assert_int_equal(ctl_command_lookup(r.name, 1, other), (int)i);
        assert_int_equal(ctl_command_lookup(r.name, 0, other), (int)i);
        /* Its first word names listed rows with a second word. */
        bool has_listed = false;
        struct ctl_command_row l;
        for (unsigned k = 0; ctl_command_row(k, &l); k++) {
            has_listed = has_listed ||
                         (l.help != NULL && l.sub != NULL && strcmp(l.name, r.name) == 0 && k < i);
        }
        assert_true(has_listed);
    }
    assert_int_equal(ctl_command_lookup("no-such-command", 0, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_runs_something),
        cmocka_unit_test(test_each_listed_row_has_its_usage_line),
        cmocka_unit_test(test_dispatch_finds_each_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
