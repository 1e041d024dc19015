/* The command-line client of the API ("raftpg ctl ..."). */
#ifndef RAFTPG_CTL_H
#define RAFTPG_CTL_H

#include <stdbool.h>
#include <stdio.h>

/* argv[0] is "ctl". Returns the process exit code: 0 success, 1 failure, 2 usage error. */
int ctl_main(int argc, char **argv);

/* One row of the subcommand table, as the usage and the dispatch read it (all borrowed). */
struct ctl_command_row {
    const char *name; /* the first word */
    const char *sub;  /* the second word ("member add"), or NULL */
    const char *args; /* after the words, or NULL */
    const char *help; /* the description; NULL: a row the usage does not list */
    bool runs;        /* it has a handler */
};

/* Row i of the table, in the usage's order, into row; false past the last. */
bool ctl_command_row(unsigned i, struct ctl_command_row *row);

/* The row that runs `raftpg ctl cmd argv...` (argc words after cmd), -1 for an unknown cmd. */
int ctl_command_lookup(const char *cmd, int argc, char **argv);

/* The usage `raftpg ctl --help` prints: the commands, then the options. */
void ctl_print_usage(FILE *f);

#endif
