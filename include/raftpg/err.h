/* Error codes shared by every module, and their messages. */
#ifndef RAFTPG_ERR_H
#define RAFTPG_ERR_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds, on the monotonic clock unless a name says otherwise. */
typedef uint64_t rpg_msec;

/* Size of the caller-provided error message buffer every fallible function fills. */
#define RPG_ERRMSG_SIZE 256

/* Fallible functions return 0 or one of these (negative) codes. */
enum {
    RPG_OK = 0,
    RPG_ENOMEM = -1,     /* out of memory */
    RPG_EINVAL = -2,     /* invalid argument or input */
    RPG_EIO = -3,        /* I/O error */
    RPG_ECONFIG = -4,    /* configuration error */
    RPG_ENOTFOUND = -5,  /* no such object */
    RPG_EEXIST = -6,     /* object already exists */
    RPG_EPROTO = -7,     /* malformed message or unsupported version */
    RPG_ENOTLEADER = -8, /* this node is not the Raft leader */
    RPG_EBUSY = -9,      /* another operation is in progress */
    RPG_ETIMEDOUT = -10, /* operation timed out */
    RPG_ECORRUPT = -11,  /* on-disk data is corrupt or belongs elsewhere */
    RPG_ERAFT = -12,     /* libraft reported an error */
    RPG_ECONN = -13,     /* could not connect or connection lost */
};

/* Static description of an RPG_E* code; never NULL. */
const char *rpg_strerror(int code);

/* Formats into errmsg (RPG_ERRMSG_SIZE bytes) and returns code, for `return rpg_err(...)`. */
int rpg_err(char *errmsg, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* snprintf into buf whose truncation is accepted: a message or a bounded path cut short still
 * says what came first. The one home of that habit (no return value to ignore). */
void rpg_fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
