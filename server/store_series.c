/* store_series.c — pre-aggregated figures of an ended session (store_series.h): the summary's
 * task count, maximum concurrency and lag percentiles in session_stats, and the concurrency
 * series as a mipmap of min/max buckets in conc_mip, computed with stats.c from the rows once
 * the session ended (by writer.c's figures thread for a large session, else on the first read),
 * one computation per session at a time. Part of the store module (store_internal.h). */
#include "store_series.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

#define MIP_LEVELS 4
#define MIP_MIN_POINTS 8192 /* a shorter series is read from the intervals: cheap at that size */

/* buckets over [0, duration) at level L */
static int64_t mip_buckets(int level)
{
  return (int64_t)65536 >> (4 * level);
}

static int64_t mip_width(int64_t duration, int level)
{
  int64_t c = mip_buckets(level);
  int64_t w = (duration + c - 1) / c;
  return w > 0 ? w : 1;
}

typedef struct mip_row { int64_t level, bucket, lo, hi, last; } mip_row;

/* The buckets of every level where the count changes; the count entering a bucket (the last of
 * the bucket before) counts towards its least and most, as the step holds until the first
 * change in it. *out malloc'd. */
static int mip_build(const stats_point *p, size_t np, int64_t duration, mip_row **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  size_t cap = 0;
  for(int l = 0; l < MIP_LEVELS; l++)
    cap += (size_t)(np < (size_t)mip_buckets(l) ? np : (size_t)mip_buckets(l));
  mip_row *v = malloc((cap ? cap : 1) * sizeof(*v));
  if(!v)
    return LS_ENOMEM;
  size_t k = 0;
  for(int l = 0; l < MIP_LEVELS; l++) {
    int64_t w = mip_width(duration, l), c = mip_buckets(l), carry = 0;
    for(size_t i = 0; i < np && k < cap;) {
      int64_t b = p[i].t / w;
      if(b >= c)
        b = c - 1;
      mip_row m = {l, b, carry, carry, carry};
      for(; i < np && (p[i].t / w == b || (b == c - 1 && p[i].t / w >= c)); i++) {
        if(p[i].n < m.lo)
          m.lo = p[i].n;
        if(p[i].n > m.hi)
          m.hi = p[i].n;
        m.last = p[i].n;
      }
      carry = m.last;
      v[k++] = m;
    }
  }
  *out = v;
  *n = k;
  return 0;
}

/* What one session's figures write: the mipmap's rows, then the session_stats row last (its
 * presence says the figures are complete), in transactions of about STORE_CHUNK_MS (70k mipmap
 * rows at 1M tasks held the lock 184 ms in one). */
typedef struct put_arg {
  const store_session *x;
  const store_sstats *s;
  const mip_row *mip;
  size_t nmip;
  int levels;
  size_t next;    /* mipmap rows written so far */
  double t0;      /* when this transaction got the write lock */
} put_arg;

static int run(sqlite3 *db, sqlite3_stmt *st)
{
  int src = sqlite3_step(st);
  sqlite3_reset(st);
  if(src == SQLITE_DONE || src == SQLITE_ROW)
    return 0;
  log_msg(LOG_WARN, "store: series: %s", sqlite3_errmsg(db));
  return store_code_of(src) ? store_code_of(src) : LS_EIO;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
  if(sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
    return 0;
  log_msg(LOG_WARN, "store: series: %s", sqlite3_errmsg(db));
  return LS_EIO;
}

/* The figures stored before go first: with no session_stats row, a reader computes them (or waits
 * for whoever is computing them). */
static int drop_series(sqlite3 *db, int64_t sid)
{
  sqlite3_stmt *del = NULL, *delm = NULL;
  int rc = prep(db, "DELETE FROM session_stats WHERE sid = ?1", &del);
  if(!rc)
    rc = prep(db, "DELETE FROM conc_mip WHERE sid = ?1", &delm);
  if(!rc) {
    sqlite3_bind_int64(del, 1, sid);
    sqlite3_bind_int64(delm, 1, sid);
    rc = run(db, del);
    if(!rc)
      rc = run(db, delm);
  }
  sqlite3_finalize(del);
  sqlite3_finalize(delm);
  return rc;
}

static int put_stats(sqlite3 *db, const put_arg *a)
{
  sqlite3_stmt *ins = NULL;
  int rc = prep(db, "INSERT INTO session_stats(sid, n_events, tasks, max_concurrency, lag_samples,"
                    " lag_avg_ms, lag_p50_ms, lag_p95_ms, lag_p99_ms, lag_max_ms, conc_levels)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", &ins);
  if(!rc) {
    const store_sstats *s = a->s;
    sqlite3_bind_int64(ins, 1, a->x->sid);
    sqlite3_bind_int64(ins, 2, a->x->n_events);
    sqlite3_bind_int64(ins, 3, s->tasks);
    sqlite3_bind_int64(ins, 4, s->max_concurrency);
    sqlite3_bind_int64(ins, 5, s->lag.samples);
    sqlite3_bind_double(ins, 6, s->lag.avg_ms);
    sqlite3_bind_double(ins, 7, s->lag.p50_ms);
    sqlite3_bind_double(ins, 8, s->lag.p95_ms);
    sqlite3_bind_double(ins, 9, s->lag.p99_ms);
    sqlite3_bind_double(ins, 10, s->lag.max_ms);
    sqlite3_bind_int(ins, 11, a->levels);
    rc = run(db, ins);
  }
  sqlite3_finalize(ins);
  return rc;
}

/* One transaction: the old figures dropped (first one), mipmap rows from a->next for about
 * STORE_CHUNK_MS, and the session_stats row once every mipmap row is in. */
static int put_series(sqlite3 *db, void *arg)
{
  put_arg *a = arg;
  a->t0 = store_now_ms();
  int64_t sid = a->x->sid;
  sqlite3_stmt *insm = NULL;
  int rc = a->next == 0 ? drop_series(db, sid) : 0;
  if(!rc)
    rc = prep(db, "INSERT INTO conc_mip(sid, level, bucket, lo, hi, last) VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &insm);
  size_t i = a->next;
  for(; !rc && i < a->nmip && !store_chunk_over(i - a->next, a->t0); i++) {
    const mip_row *m = &a->mip[i];
    sqlite3_bind_int64(insm, 1, sid);
    sqlite3_bind_int64(insm, 2, m->level);
    sqlite3_bind_int64(insm, 3, m->bucket);
    sqlite3_bind_int64(insm, 4, m->lo);
    sqlite3_bind_int64(insm, 5, m->hi);
    sqlite3_bind_int64(insm, 6, m->last);
    rc = run(db, insm);
  }
  sqlite3_finalize(insm);
  if(!rc && i == a->nmip)
    rc = put_stats(db, a);
  if(!rc)
    a->next = i;
  return rc;
}

/* The stored figures when they are as of the session's current event count: 0, or
 * LS_ENOTFOUND. */
static int read_stats(store_reader *r, const store_session *x, store_sstats *out, int *levels)
{
  sqlite3_stmt *st = NULL;
  if(sqlite3_prepare_v2(r->db, "SELECT tasks, max_concurrency, lag_samples, lag_avg_ms, lag_p50_ms, lag_p95_ms,"
                               " lag_p99_ms, lag_max_ms, conc_levels FROM session_stats"
                               " WHERE sid = ?1 AND n_events = ?2", -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return LS_EIO;
  }
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, x->n_events);
  int src = sqlite3_step(st);
  int rc = src == SQLITE_ROW ? 0 : src == SQLITE_DONE ? LS_ENOTFOUND : LS_EIO;
  if(!rc) {
    out->tasks = sqlite3_column_int64(st, 0);
    out->max_concurrency = sqlite3_column_int64(st, 1);
    out->lag.samples = sqlite3_column_int64(st, 2);
    out->lag.avg_ms = sqlite3_column_double(st, 3);
    out->lag.p50_ms = sqlite3_column_double(st, 4);
    out->lag.p95_ms = sqlite3_column_double(st, 5);
    out->lag.p99_ms = sqlite3_column_double(st, 6);
    out->lag.max_ms = sqlite3_column_double(st, 7);
    *levels = sqlite3_column_int(st, 8);
  }
  sqlite3_finalize(st);
  return rc;
}

static int lag_of(store_reader *r, int64_t sid, stats_lag *out)
{
  store_step *rows = NULL;
  size_t n = 0;
  int rc = store_load_lag(r, sid, &rows, &n);
  if(rc)
    return rc;
  int64_t *d = malloc((n ? n : 1) * sizeof(*d));
  if(!d) {
    free(rows);
    return LS_ENOMEM;
  }
  for(size_t i = 0; i < n; i++)
    d[i] = rows[i].d;
  free(rows);
  rc = stats_lag_summary(d, n, out);
  free(d);
  return rc;
}

/* Stores what was computed for an ended session; a failure (a full disk, a read-only file)
 * costs only the next read computing it again. */
static void store_computed(store_reader *r, const store_session *x, int64_t duration, const store_sstats *s,
                           const stats_point *pts, size_t np)
{
  mip_row *mip = NULL;
  size_t nmip = 0, writes = 0;
  int levels = np > MIP_MIN_POINTS ? MIP_LEVELS : 0;
  int rc = levels ? mip_build(pts, np, duration, &mip, &nmip) : 0;
  put_arg a = {x, s, mip, nmip, levels, 0, 0};
  double longest = 0;
  while(!rc) {
    rc = store_write_on_reader(r, put_series, &a);
    double held = store_now_ms() - a.t0;
    longest = held > longest ? held : longest;
    writes++;
    if(rc || a.next == nmip)
      break;
    store_yield_lock(held);
  }
  if(!rc && levels)
    log_msg(LOG_INFO, "store: figures of session %s stored: %zu mipmap rows in %zu write transactions, longest %.1f ms",
            x->id, nmip, writes, longest);
  if(rc)
    log_msg(LOG_WARN, "store: the figures of session %s were not stored (%d); computed again next time", x->id, rc);
  free(mip);
}

/* Sessions whose figures some thread is computing now, so that a second reader of the same
 * session (the page's summary, the live stream's, the figures thread) waits for the first and
 * reads what it stored instead of computing them again (issue 14: 0.8 s at 1M tasks each).
 * Process-wide, like store_rows.c's build lock; a sid of another database in the same process
 * only makes a reader wait needlessly. */
#define SERIES_BUSY_MAX 8
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cv = PTHREAD_COND_INITIALIZER;
static int64_t busy_sid[SERIES_BUSY_MAX]; /* 0: a free place */

/* 1: sid is claimed by the caller (compute, then series_release); 0: another thread was computing
 * it and has finished (read again, on a new snapshot); -1: too many at once, compute unclaimed. */
static int series_claim(int64_t sid)
{
  pthread_mutex_lock(&busy_mu);
  int waited = 0, found;
  do {
    found = 0;
    for(int i = 0; i < SERIES_BUSY_MAX; i++)
      found |= busy_sid[i] == sid;
    if(found) {
      waited = 1;
      pthread_cond_wait(&busy_cv, &busy_mu);
    }
  } while(found);
  int rc = waited ? 0 : -1;
  for(int i = 0; rc < 0 && i < SERIES_BUSY_MAX; i++)
    if(busy_sid[i] == 0) {
      busy_sid[i] = sid;
      rc = 1;
    }
  pthread_mutex_unlock(&busy_mu);
  return rc;
}

static void series_release(int64_t sid)
{
  pthread_mutex_lock(&busy_mu);
  for(int i = 0; i < SERIES_BUSY_MAX; i++)
    if(busy_sid[i] == sid)
      busy_sid[i] = 0;
  pthread_cond_broadcast(&busy_cv);
  pthread_mutex_unlock(&busy_mu);
}

/* A new read snapshot on r (what the thread that computed meanwhile stored becomes visible). */
static void new_snapshot(store_reader *r)
{
  sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
  sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
}

int store_series_stats(store_reader *r, const store_session *x, int64_t duration, store_sstats *out)
{
  memset(out, 0, sizeof(*out));
  int levels = 0, claimed = -1;
  int rc = read_stats(r, x, out, &levels);
  /* an ended session's figures are stored once computed: wait for a computation in progress */
  while(rc == LS_ENOTFOUND && x->ended && (claimed = series_claim(x->sid)) == 0) {
    new_snapshot(r);
    rc = read_stats(r, x, out, &levels);
  }
  if(rc != LS_ENOTFOUND) {
    if(claimed == 1)
      series_release(x->sid);
    return rc;
  }
  rc = lag_of(r, x->sid, &out->lag);
  stats_interval *iv = NULL;
  size_t niv = 0;
  if(!rc)
    rc = store_load_intervals(r, x->sid, &iv, &niv);
  out->tasks = (int64_t)niv;
  if(!rc && !x->ended) /* still recording: every batch would make stored figures stale */
    rc = stats_max_concurrency(iv, niv, duration, &out->max_concurrency);
  else if(!rc) {
    stats_point *pts = NULL;
    size_t np = 0;
    rc = stats_concurrency_series(iv, niv, duration, &pts, &np, &out->max_concurrency);
    /* stored only by the one computing them (claimed): two writers of one session's
     * mipmap chunks could interleave */
    if(!rc && claimed == 1)
      store_computed(r, x, duration, out, pts, np);
    free(pts);
  }
  free(iv);
  if(claimed == 1)
    series_release(x->sid);
  return rc;
}

int store_series_prepare(store *s, const char *id)
{
  double t0 = store_now_ms();
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  store_sstats ss;
  int rc = store_find_session(r, id, &ar, &x);
  if(!rc && x.ended) {
    rc = store_series_stats(r, &x, x.end_t, &ss);
    log_msg(LOG_INFO, "store: figures of ended session %s ready in %.0f ms (%lld events)", id, store_now_ms() - t0,
            (long long)x.n_events);
  }
  arena_free(&ar);
  store_reader_release(s, r);
  return rc;
}

int store_figures_due(store *s, const char *id, int64_t min_events)
{
  sqlite3_stmt *st = s->ws[W_FIGURES_DUE];
  int due = 0;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, min_events);
  if(sqlite3_step(st) == SQLITE_ROW)
    due = sqlite3_column_int(st, 0);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* id is the caller's: no pointer to it stays behind */
  return due;
}

/* up to three points a bucket: its most, its least, the count it ends with (each only when it
 * differs from the point before), so a step chart drawn from them keeps the envelope */
static void emit(stats_point *o, size_t *k, int64_t t, int64_t n)
{
  if(*k && o[*k - 1].n == n)
    return;
  if(*k && o[*k - 1].t >= t)
    t = o[*k - 1].t + 1;
  o[(*k)++] = (stats_point){t, n};
}

int store_series_concurrency(store_reader *r, const store_session *x, int64_t duration, int64_t px,
                             stats_point **out, size_t *n, int64_t *max)
{
  *out = NULL;
  *n = 0;
  store_sstats s;
  int levels = 0;
  int rc = store_series_stats(r, x, duration, &s); /* computes and stores them when stale */
  if(!rc)
    rc = read_stats(r, x, &s, &levels);
  if(!rc && levels == 0)
    rc = LS_ENOTFOUND;
  if(rc)
    return rc;
  /* the finest level with at most 2 * px buckets over the session */
  int level = MIP_LEVELS - 1;
  for(int l = 0; l < MIP_LEVELS; l++) {
    if(mip_buckets(l) <= 2 * px) {
      level = l;
      break;
    }
  }
  int64_t w = mip_width(duration, level);
  sqlite3_stmt *st = NULL;
  if(sqlite3_prepare_v2(r->db, "SELECT bucket, lo, hi, last FROM conc_mip WHERE sid = ?1 AND level = ?2 ORDER BY bucket",
                        -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return LS_EIO;
  }
  size_t cap = 3 * (size_t)mip_buckets(level) + 2;
  stats_point *o = malloc(cap * sizeof(*o));
  if(!o) {
    sqlite3_finalize(st);
    return LS_ENOMEM;
  }
  size_t k = 0;
  int64_t last = 0;
  emit(o, &k, 0, 0);
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int(st, 2, level);
  int src;
  while((src = sqlite3_step(st)) == SQLITE_ROW && k + 3 < cap) {
    int64_t t0 = sqlite3_column_int64(st, 0) * w;
    emit(o, &k, t0, sqlite3_column_int64(st, 2));
    emit(o, &k, t0 + w / 3, sqlite3_column_int64(st, 1));
    last = sqlite3_column_int64(st, 3);
    emit(o, &k, t0 + 2 * w / 3, last);
  }
  sqlite3_finalize(st);
  if(src != SQLITE_DONE && src != SQLITE_ROW) {
    free(o);
    return LS_EIO;
  }
  if(o[k - 1].t < duration)
    o[k++] = (stats_point){duration, last};
  *out = o;
  *n = k;
  *max = s.max_concurrency;
  return 0;
}
