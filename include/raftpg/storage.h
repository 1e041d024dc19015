/* The Raft directory's health: the open-segment size that fits its file system, leftover open
 * segments that libraft 0.15 would load at the wrong indexes, the bound after which a leader that
 * cannot persist steps aside, and the verdict on the state checksums members exchange. Pure,
 * except storage_check_segments and storage_probe (file system calls, for the threadpool or the
 * start-up). README "Storage faults" documents every bound below. */
#ifndef RAFTPG_STORAGE_H
#define RAFTPG_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"

/* libraft's default open-segment size, the largest we use. */
#define STORAGE_SEGMENT_MAX (8u << 20)
/* The smallest: a few blocks hold the largest command (an INIT of FSM_MEMBERS_MAX members). */
#define STORAGE_SEGMENT_MIN (64u << 10)
/* Room wanted at start, in segments: the one written, the two libraft prepares ahead, one being
 * closed, and the closed ones kept until a snapshot trims the log. */
#define STORAGE_SEGMENTS_NEEDED 8
/* While running: fewer free segments than this is warned about; less than one is a fault (the
 * next open segment cannot be allocated). */
#define STORAGE_SEGMENTS_LOW 4

/* Name of the file the agent writes and removes to prove the directory takes writes. */
#define STORAGE_PROBE_FILE "raftpg.probe"

/* Name of the file recording that the log in the directory may have lost entries: written once
 * the directory takes writes again after libraft failed to persist entries it had received. */
#define STORAGE_FAULT_FILE "raftpg.storage-fault"

/* Name of the file holding what the next start of the agent checks the directory against when
 * this run ends with a storage failure pending (a closed write fence, Raft not yet restarted).
 * Reserved at its full size (STORAGE_PENDING_SIZE) when Raft starts, so that a record written
 * when a write fails overwrites blocks the file already has and a full directory can take it;
 * all zeros while nothing is pending. */
#define STORAGE_PENDING_FILE "raftpg.storage-pending"
/* Entries of the log held in memory past the last stored one that the record can carry; a
 * failure with more pending is recorded as too large to check (the next start refuses). */
#define STORAGE_PENDING_MAX 1024
#define STORAGE_PENDING_SIZE (64u << 10)

/* The same record beside the directory, at "<dir>.storage-pending": a file system that went
 * read-only takes no record in the directory, and a run that then ends (a leader leaving the
 * group, the operator unmounting to repair it) would leave the next start nothing to check. It
 * helps only when the directory's parent is on another file system (a mount of its own). */
#define STORAGE_PENDING_SIDE_SUFFIX ".storage-pending"

/* A storage failure pending at the end of a run: the last index stored (acknowledged), and the
 * term and checksum of each entry the log held in memory from first on; id is the Raft id of the
 * server that wrote it (0 in records of version 1), so that a record beside a directory that was
 * since moved aside is not applied to its successor. */
struct storage_pending {
    bool present;
    uint64_t id;
    bool overflow; /* more than STORAGE_PENDING_MAX entries were pending */
    uint64_t acked;
    uint64_t first;
    size_t n;
    struct {
        uint64_t term;
        uint64_t sum;
    } e[STORAGE_PENDING_MAX];
    char why[160];
};

/* Creates STORAGE_PENDING_FILE in dir if needed, writes it to its full size (keeping what it
 * holds) and returns its open descriptor in *fd. */
int storage_pending_open(const char *dir, int *fd, char *errmsg);
/* The same for a record at path (the one beside the directory). */
int storage_pending_open_path(const char *path, int *fd, char *errmsg);
/* The path of the record beside dir (STORAGE_PENDING_SIDE_SUFFIX). */
void storage_pending_side_path(const char *dir, char *path, size_t size);
/* Writes p (present) over the reserved file, or zeros when p is NULL; no fsync (the caller
 * syncs off its loop, storage_pending_sync): a process that ends still leaves it to the kernel. */
int storage_pending_write(int fd, const struct storage_pending *p, char *errmsg);
int storage_pending_sync(int fd, char *errmsg);
/* Reads dir's record: p->present false when the file is absent or all zeros; RPG_ECORRUPT,
 * with the remedy, when it cannot be read back or was too large to check. */
int storage_pending_read(const char *dir, struct storage_pending *p, char *errmsg);
/* The same for the record at path; errors name dir and path. */
int storage_pending_read_path(const char *dir, const char *path, struct storage_pending *p,
                              char *errmsg);

/* The remedy every refusal of a Raft directory gives: the member comes back with an empty log
 * under a new id, so that nothing it might have lost counts towards a majority. */
#define STORAGE_REMEDY                                                                             \
    "move the directory aside, then remove and re-add the member (README \"Storage faults\")"

/* Writes STORAGE_FAULT_FILE in dir with the time and what (write, fsync, rename). */
int storage_mark_fault(const char *dir, const char *what, char *errmsg);

/* RPG_ECORRUPT, quoting the record and giving STORAGE_REMEDY, when dir holds
 * STORAGE_FAULT_FILE; 0 otherwise. */
int storage_check_fault(const char *dir, char *errmsg);

/* The largest power-of-two segment size in [MIN, MAX] of which STORAGE_SEGMENTS_NEEDED fit in
 * avail bytes. RPG_EIO when not even the smallest fits (the message gives the sizes). */
int storage_segment_size(uint64_t avail, size_t *size, char *errmsg);

/* An open segment file "open-<counter>": used when it holds written data (its format word is
 * not zero), unused when libraft only preallocated it. */
struct storage_open_segment {
    uint64_t counter;
    bool used;
};

/* Marks in stale[] the used open segments that libraft 0.15 would load at the wrong indexes:
 * libraft fills and closes open segments in counter order, so after a crash the used ones form
 * one contiguous run of counters at the top; a used segment below a gap in the counters is one
 * whose closing failed (a read-only or full directory) and that a later run never revisited. Its
 * file does not record its first index, so libraft would append its entries after the newest
 * closed segment. segs may be in any order. Returns the number marked. */
unsigned storage_stale_segments(const struct storage_open_segment *segs, unsigned n, bool *stale);

/* Scans dir for stale open segments (above). RPG_ECORRUPT, naming the files and the remedy,
 * when there are any; RPG_EIO when dir cannot be read; 0 otherwise (also when dir is absent). */
int storage_check_segments(const char *dir, char *errmsg);

/* Bytes held by dir's open segments: at start libraft removes the ones it only preallocated and
 * truncates the used ones, so they count as room for the choice of the segment size. */
int storage_open_bytes(const char *dir, uint64_t *bytes, char *errmsg);

/* Free space of dir's file system for an unprivileged writer, in bytes. */
int storage_free_bytes(const char *dir, uint64_t *avail, char *errmsg);

/* Proves dir takes writes: creates, writes one block to, fsyncs and removes STORAGE_PROBE_FILE.
 * Blocks: run it off the loop. On failure *err_no is the errno and errmsg names the path. */
int storage_probe(const char *dir, int *err_no, char *errmsg);

/* What a Raft leader does about its storage. */
enum storage_leader_action {
    STORAGE_LEADER_STAY = 0, /* nothing wrong, or waiting for the transfer to take effect */
    STORAGE_LEADER_TRANSFER, /* hand leadership to a healthy voter */
    STORAGE_LEADER_EXIT,     /* the transfer did not happen: leave the group so others elect */
};
const char *storage_leader_action_name(enum storage_leader_action a);

/* A leader whose directory is failing, or that has not confirmed a write (lease or own-term
 * barrier) for 3 election timeouts (libraft itself steps down a leader cut off from its
 * majority within 2 ET + a heartbeat, so this means its own writes fail), transfers leadership
 * once; still leader 3 ET after that transfer, it exits. confirmed is when it last confirmed a
 * write or became leader, transfer_at when it tried the transfer (0: not yet). */
#define STORAGE_LEADER_BOUND_ET 3
enum storage_leader_action storage_leader_decide(bool storage_failed, rpg_msec now,
                                                 rpg_msec confirmed, rpg_msec transfer_at,
                                                 unsigned election_timeout_ms);

/* The state-checksum verdict of one member from its comparisons with the peers that reported
 * a checksum at an index it also has: n_same agreed, n_differ did not, leader_differs is true
 * when the Raft leader is among the latter. The member has diverged when more peers differ
 * than its own side counts (itself included), or as many and the leader is on the other side. */
bool storage_state_diverged(unsigned n_same, unsigned n_differ, bool leader_differs);

#endif
