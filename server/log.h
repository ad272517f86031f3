/* log.h — one line per event worth knowing, to stderr, with a time stamp and a level.
 * The level is set once by main.c before any thread starts and only read afterwards. */
#ifndef LS_LOG_H
#define LS_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
/* "error", "warn", "info", "debug" → level, or -1. */
int log_parse_level(const char *name);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
