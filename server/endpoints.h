/* endpoints.h — an endpoint over time, as pure functions: groups sessions by (service, endpoint),
 * their duration percentiles and lag p95, and ranks the await hot spots and blocking culprits of
 * each group from per-session points fed in any order. No I/O, no SQL, no JSON: the store reads
 * the rows (store_endpoints.c), query_endpoints.c writes the answer. */
#ifndef LS_ENDPOINTS_H
#define LS_ENDPOINTS_H
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "errors.h"
#include "share.h"

/* One ended session of the window. Strings live in the caller's arena. */
typedef struct ep_session {
  int64_t sid;
  int64_t duration;   /* ns */
  int64_t lag_max;    /* ns, the session's longest lag sample (0 when none) */
  int has_lag;        /* it has lag samples */
  /* The share of requests it was recorded in (meta.fraction), in millionths: 1..999999, one
   * request drawn in 1e6 / ppm, so it stands for that many; 0 (zeroed): every request. Beside
   * has_lag, in what was padding: the struct stays 72 bytes, and a window of 100,000 sessions
   * moves them several times (with it after `started`, 80 bytes, that window's query read 1.13x
   * against a build of the server before the share, where this layout read 1.05x against the same
   * build: bench/endpoints/query_ab.py's rounds, bench/README.md). */
  int32_t ppm;
  int64_t started;    /* started_ns (what since/until compare), -1 when unknown */
  const char *id, *name, *route, *service;
} ep_session;
_Static_assert(sizeof(ep_session) == 72 || sizeof(void *) != 8, "ep_session: keep it 72 bytes");

/* ep_session.ppm is a stored fraction (0 or NULL: none) through share_ppm (common/share.h), the
 * collector's rounding. Requests in millionths (ep_group.requests_u) as a whole number, rounded
 * half up: */
static inline int64_t ep_requests(int64_t requests_u) { return (requests_u + SHARE_PPM_ALL / 2) / SHARE_PPM_ALL; }

/* A hot spot (await point) or culprit (block frame) of a group. what: the awaited object, or for
 * a culprit the source line. Strings are the aggregation's own copies. */
typedef struct ep_point {
  const char *file, *func, *what;
  int64_t line;       /* -1: unknown */
  int64_t count, total, max;
  int64_t sessions;   /* sessions of the group the point occurs in */
} ep_point;

/* One (service, endpoint): endpoint is the route template, or the session name without one. */
typedef struct ep_group {
  const char *service, *endpoint;
  int templated;      /* the endpoint is a route template */
  size_t first, n;    /* its sessions: e->s[first .. first + n), by duration ascending */
  int64_t p50, p95, max;        /* duration, nearest rank */
  int64_t lag_p95, lag_sessions; /* p95 of the sessions' max lag over those with lag samples */
  int64_t blocks, block_total;  /* blocks in its sessions and their summed durations */
  /* of n, the sessions recorded as a share of requests (ppm != 0); the requests all n stand for,
   * in millionths of a request: the sum of 1e12 / ppm over them (integer division, so the sum is
   * the same in any order: a rollup's and a session-by-session answer agree), 1e6 for each other
   * session. At most 1e12 a session, so 100,000 sessions stay far below 2^63. */
  int64_t sampled;
  int64_t requests_u;
  size_t median;      /* index in e->s of the session at the p50 rank */
  ep_point *hot, *culprits;     /* ranked; into e's arrays */
  size_t nhot, nculprits;
} ep_group;

typedef struct ep_entry ep_entry;
typedef struct ep_table {
  ep_entry *v;        /* entries, in order of first sight */
  size_t n, cap;
  uint32_t *slot;     /* open addressing over v: index + 1, 0 empty */
  size_t nslot;
} ep_table;

typedef struct ep_agg {
  ep_session *s;      /* grouped, each group by (duration, sid); borrowed */
  size_t ns;
  ep_group *g;        /* groups: count descending, then service, endpoint */
  size_t ng;
  int64_t *by_sid;    /* pairs (sid, group) sorted by sid, for ep_add_* */
  ep_table aw, bl;
  ep_point *hot, *culprits; /* every group's ranked points, each group's a contiguous run */
  arena a;            /* copies of point strings */
} ep_agg;

/* Groups s[0..n) (reordered in place) into e. Then feed points, then ep_finish. 0 or LS_ENOMEM. */
int ep_group_sessions(ep_agg *e, ep_session *s, size_t n);
/* An await point of session sid summed over `count` awaits (total, max ns). Sessions outside the
 * groups are ignored. 0 or LS_ENOMEM. */
int ep_add_await(ep_agg *e, int64_t sid, const char *file, int64_t line, const char *func,
                 const char *what, int64_t count, int64_t total, int64_t max);
/* One block of session sid, by its innermost frame (src: its source line). */
int ep_add_block(ep_agg *e, int64_t sid, const char *file, int64_t line, const char *func,
                 const char *src, int64_t d);
/* A point already summed over `sessions` sessions of the group of session sid (a rollup of a
 * block of sessions, store_rollup.c): culprit 0 an await point, 1 a blocking culprit (its count
 * and total also go to the group's blocks). Those sessions must not be fed otherwise. */
int ep_add_summed(ep_agg *e, int64_t sid, int culprit, const char *file, int64_t line, const char *func,
                  const char *what, int64_t count, int64_t total, int64_t max, int64_t sessions);
/* The group of session sid (an index into e->g), or -1 when it is not in the window. */
int64_t ep_group_of(const ep_agg *e, int64_t sid);
/* Ranks each group's points: hot spots by total descending (then count descending, file, line),
 * culprits by count descending (then total descending, file, line). 0 or LS_ENOMEM. */
int ep_finish(ep_agg *e);
void ep_free(ep_agg *e);

/* Nearest rank: the 0-based index of percentile p (1..100) of n >= 1 sorted samples. */
size_t ep_rank(int p, size_t n);
#endif
