/* The command-line client of the API ("raftpg ctl ..."). */
#ifndef RAFTPG_CTL_H
#define RAFTPG_CTL_H

/* argv[0] is "ctl". Returns the process exit code: 0 success, 1 failure, 2 usage error. */
int ctl_main(int argc, char **argv);

#endif
