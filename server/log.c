/* log.c — stderr logging (log.h). The one mutable file-level variable outside main.c: the level,
 * written once at start before threads exist, so reads need no lock. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = LOG_INFO;

void log_set_level(int level)
{
  log_level = level;
}

int log_parse_level(const char *name)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for(int i = 0; i < 4; i++)
    if(strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

void log_msg(int level, const char *fmt, ...)
{
  if(level > log_level)
    return;
  static const char *const tags[] = {"error", "warn", "info", "debug"};
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   tags[level < 0 ? 0 : level > 3 ? 3 : level]);
  if(n < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  /* One fputs of a whole line: lines from different threads do not interleave. */
  size_t len = strlen(line);
  if(len < sizeof(line) - 1) {
    line[len] = '\n';
    line[len + 1] = '\0';
  }
  else
    line[sizeof(line) - 2] = '\n';
  fputs(line, stderr);
}
