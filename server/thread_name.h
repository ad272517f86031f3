/* thread_name.h — names the calling thread (Linux: what top -H, ps -L and /proc/PID/task/TID/comm
 * show, at most 15 bytes), so the server's CPU can be told apart by role: the writer, the parse
 * pool, the figures thread... (bench/overhead/ingest_ab.py reads it). Elsewhere a no-op. */
#ifndef LS_THREAD_NAME_H
#define LS_THREAD_NAME_H

#ifdef __linux__
#include <sys/prctl.h>
static inline void thread_name(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }
#else
static inline void thread_name(const char *name) { (void)name; }
#endif

#endif
