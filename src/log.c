#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "raftpg/log.h"

static struct {
    char member[64];
    char role[32];
    uint64_t term;
    enum log_level min_level;
    int json;
} g_log = {.member = "-", .role = "-", .min_level = LOG_INFO};

const char *log_level_name(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG: return "DEBUG";
    case LOG_INFO: return "INFO";
    case LOG_WARNING: return "WARNING";
    case LOG_ERROR: return "ERROR";
    }
    return "UNKNOWN";
}

void log_setup(const char *member, enum log_level min_level, int json)
{
    snprintf(g_log.member, sizeof g_log.member, "%s", member != NULL ? member : "-");
    g_log.min_level = min_level;
    g_log.json = json;
}

void log_set_context(uint64_t term, const char *role)
{
    g_log.term = term;
    snprintf(g_log.role, sizeof g_log.role, "%s", role != NULL ? role : "-");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < g_log.min_level) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

    if (g_log.json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "ts", when, "level",
                              log_level_name(level), "member", g_log.member, "term",
                              (json_int_t)g_log.term, "role", g_log.role, "msg", msg);
        char *line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        if (line != NULL) {
            fprintf(stderr, "%s\n", line);
            free(line);
        }
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s term=%llu role=%s: %s\n", when, log_level_name(level),
                g_log.member, (unsigned long long)g_log.term, g_log.role, msg);
    }
}
