#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "raftpg/log.h"
#include "raftpg/loopwatch.h"

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

/* Repeats of one line: at most LOG_REPEAT_MAX identical lines (level and text) per
 * LOG_REPEAT_WINDOW_S; the rest are counted and the next line printed after the window says how
 * many were left out. A condition retried every tick stays visible without flooding the log. */
#define LOG_REPEAT_MAX 10
#define LOG_REPEAT_WINDOW_S 60
#define LOG_REPEAT_SLOTS 32

static struct repeat {
    uint64_t hash;
    time_t window_start;
    time_t last_used;
    unsigned printed;
    unsigned suppressed;
} g_repeats[LOG_REPEAT_SLOTS];

static uint64_t line_hash(enum log_level level, const char *msg)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)level;
    for (const unsigned char *c = (const unsigned char *)msg; *c != '\0'; c++) {
        h = (h ^ *c) * 1099511628211ULL;
    }
    return h;
}

/* Whether this line is printed; *left_out is how many identical ones were not, since it last
 * was (to say so). */
static bool repeat_allows(enum log_level level, const char *msg, time_t now, unsigned *left_out)
{
    uint64_t h = line_hash(level, msg);
    struct repeat *r = NULL, *oldest = &g_repeats[0];
    *left_out = 0;
    for (unsigned i = 0; i < LOG_REPEAT_SLOTS; i++) {
        if (g_repeats[i].hash == h && g_repeats[i].last_used != 0) {
            r = &g_repeats[i];
            break;
        }
        if (g_repeats[i].last_used < oldest->last_used) {
            oldest = &g_repeats[i];
        }
    }
    if (r == NULL) {
        r = oldest;
        memset(r, 0, sizeof *r);
        r->hash = h;
        r->window_start = now;
    }
    r->last_used = now;
    if (now - r->window_start >= LOG_REPEAT_WINDOW_S) {
        *left_out = r->suppressed;
        r->window_start = now;
        r->printed = 0;
        r->suppressed = 0;
    }
    if (r->printed >= LOG_REPEAT_MAX) {
        r->suppressed++;
        return false;
    }
    r->printed++;
    return true;
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
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    unsigned left_out = 0;
    if (!repeat_allows(level, msg, mono.tv_sec + 1, &left_out)) {
        return;
    }
    if (left_out > 0) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, " (the same line %u more times in the last %d s)",
                 left_out, LOG_REPEAT_WINDOW_S);
    }
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

    /* stderr is often a file on the node's busiest disk: a write can wait for its writeback. */
    uint64_t begun = loopwatch_span_begin();
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
    loopwatch_span_end("log write", begun);
}
