/* The agent's Raft server: raft_uv storage and the transport (transport.h when raft.secret_file
 * is set, libraft's plain TCP otherwise), node identity, bootstrap, and the loop handles that run
 * the consensus logic of cons.h (observation after every loop iteration, reconciliation, lease
 * renewal, and Raft's delayed start). */
#ifndef RAFTPG_CONS_UV_H
#define RAFTPG_CONS_UV_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/cons.h"

/* The lease's clock, in ms: CLOCK_BOOTTIME, which also counts the time the machine was suspended
 * (CLOCK_MONOTONIC, the loop's, does not: a node resumed from a suspension would believe in a lease
 * that ended long ago). Every time the fence and the core compare with the lease comes from it. */
rpg_msec cons_uv_clock_ms(void);

/* Name of the identity file kept in the Raft data directory. */
#define CONS_IDENTITY_FILE "raftpg.identity"

/* Reads the identity file of dir. Returns 0 with *id set; RPG_ENOTFOUND when dir is empty or
 * absent (a fresh node); RPG_ECORRUPT when dir holds Raft files without an identity, the identity
 * is unreadable, or it names another cluster or member (the message says which). */
int cons_identity_read(const char *dir, const char *scope, const char *name, uint64_t *id,
                       char *errmsg);

/* Creates dir (0700) if needed and durably writes the identity (write, fsync, rename). */
int cons_identity_write(const char *dir, const char *scope, const char *name, uint64_t id,
                        char *errmsg);

/* Whether dir holds Raft state: any file besides the identity file (a crash between writing the
 * identity and the bootstrap leaves only that). Absent or empty: false. */
int cons_has_raft_state(const char *dir, bool *has, char *errmsg);

/* Checks the Raft directory (which must exist) before Raft starts: no record of lost entries
 * (storage_check_fault), no leftover open segments (storage_check_segments) and room for the
 * raft log, with *segment_size the open-segment size that fits (storage_segment_size) in
 * *free_bytes (open segments included). RPG_ECORRUPT or RPG_EIO with a message naming the
 * directory, the files or the sizes, and the remedy. */
int cons_storage_check(const char *dir, size_t *segment_size, uint64_t *free_bytes, char *errmsg);

/* Starts Raft as server id. With bootstrap (a configured initial member of a cluster that does
 * not exist yet), bootstraps the configured members as voters first unless the directory already
 * holds Raft state (never bootstraps twice). Returns 0 or a negative code; on error nothing is
 * left open. Raft itself starts one election timeout later; if that fails (a corrupt log, say),
 * failed and error are set and on_change fires. conf is borrowed until cons_close's callback. */
int cons_start(struct cons *c, uv_loop_t *loop, const struct conf *conf, uint64_t id,
               bool bootstrap, cons_change_cb on_change, void *data, char *errmsg);

/* Recovery from a lost majority, offline (no agent may run on dir): appends to this member's
 * Raft log a configuration of this member alone as voter (libraft's raft_recover), so that it
 * elects itself with the log it holds. Returns 0, or RPG_ECORRUPT/RPG_EIO/RPG_ERAFT with a
 * message naming the directory and the problem. */
int cons_recover(const struct conf *conf, uint64_t id, char *errmsg);

/* Stops Raft and closes every handle; cb fires when done. Safe if cons_start never succeeded. */
void cons_close(struct cons *c, void (*cb)(struct cons *c));

#endif
