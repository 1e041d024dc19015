/* One line per event on stderr, with the member name, Raft term and role; text or JSON. */
#ifndef RAFTPG_LOG_H
#define RAFTPG_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR };

/* Sets the member name (copied), the lowest level printed and the format (json != 0). */
void log_setup(const char *member, enum log_level min_level, int json);

/* Updates the term and role printed with every following line; role is copied. */
void log_set_context(uint64_t term, const char *role);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *log_level_name(enum log_level level);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
