/* What the agent's Raft server (cons_uv.c) and its directory's offline side (cons_dir.c) share. */
#ifndef RAFTPG_CONS_UV_INT_H
#define RAFTPG_CONS_UV_INT_H

/* Creates dir and its parents (0700) where missing. */
int cons_mkdir_p(const char *dir, char *errmsg);

#endif
