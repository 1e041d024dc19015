#include <stdarg.h>
#include <stdio.h>

#include "raftpg/err.h"

const char *rpg_strerror(int code)
{
    switch (code) {
    case RPG_OK: return "success";
    case RPG_ENOMEM: return "out of memory";
    case RPG_EINVAL: return "invalid argument";
    case RPG_EIO: return "input/output error";
    case RPG_ECONFIG: return "configuration error";
    case RPG_ENOTFOUND: return "not found";
    case RPG_EEXIST: return "already exists";
    case RPG_EPROTO: return "malformed message";
    case RPG_ENOTLEADER: return "not the leader";
    case RPG_EBUSY: return "busy";
    case RPG_ETIMEDOUT: return "timed out";
    case RPG_ECORRUPT: return "corrupt or foreign data";
    case RPG_ERAFT: return "raft error";
    case RPG_ECONN: return "connection error";
    }
    return "unknown error";
}

int rpg_err(char *errmsg, int code, const char *fmt, ...)
{
    if (errmsg != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, RPG_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return code;
}

void rpg_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}
