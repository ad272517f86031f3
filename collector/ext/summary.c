/* summary.c — a session's summary kept in-process (summary.h): what `loopscope run` prints at exit
 * and what the pytest plugin checks when a test ends, without asking the server. Bounded: the top
 * SUM_TOP_BLOCKS blocks, at most SUM_SPOTS_MAX await points, a fixed lag histogram. All under the
 * GIL; the recorders call it only for sessions that keep a summary. */
#include "summary.h"

ls_summary *summary_new(void) { return PyMem_Calloc(1, sizeof(ls_summary)); }

void summary_free(ls_summary *s) {
  if (!s) return;
  for (int i = 0; i < s->ntop; i++) Py_XDECREF(s->top[i].stack);
  for (size_t i = 0; i < s->spots_cap; i++) Py_XDECREF(s->spots[i].code);
  PyMem_Free(s->spots);
  PyMem_Free(s);
}

/* ---- lag: log-linear histogram of microseconds (exact below 16 us, then 8 buckets per power of
 * two: a bucket's width is at most 1/8 of its lower bound) ---------------------------------- */
static int lag_bucket(uint64_t us) {
  if (us < 16) return (int)us;
  int e = 63 - __builtin_clzll(us); /* 4.. */
  int b = 16 + (e - 4) * 8 + (int)((us >> (e - 3)) & 7);
  return b < SUM_LAG_BUCKETS ? b : SUM_LAG_BUCKETS - 1;
}

/* The middle of bucket b, in ns. */
static uint64_t lag_bucket_mid_ns(int b) {
  if (b < 16) return (uint64_t)b * 1000 + 500;
  int e = (b - 16) / 8 + 4, sub = (b - 16) % 8;
  uint64_t lo = ((uint64_t)(8 + sub)) << (e - 3), width = (uint64_t)1 << (e - 3);
  return (lo * 2 + width) * 500; /* (lo + width / 2) us */
}

void summary_lag(ls_summary *s, uint64_t d) {
  s->lag_n++;
  s->lag_sum += d;
  if (d > s->lag_max) s->lag_max = d;
  s->lag_hist[lag_bucket(d / 1000)]++;
}

/* The q-quantile (0..1) of the lag samples, in ns: the middle of its bucket, at most the max. */
static uint64_t lag_quantile(const ls_summary *s, double q) {
  if (!s->lag_n) return 0;
  uint64_t want = (uint64_t)(q * (double)s->lag_n), seen = 0;
  if (want >= s->lag_n) want = s->lag_n - 1;
  for (int b = 0; b < SUM_LAG_BUCKETS; b++) {
    seen += s->lag_hist[b];
    if (seen > want) {
      uint64_t v = lag_bucket_mid_ns(b);
      return v < s->lag_max ? v : s->lag_max;
    }
  }
  return s->lag_max;
}

/* ---- await hot spots ------------------------------------------------------------------------ */
static size_t spot_hash(PyObject *code, int32_t line) { return ptr_hash(code) ^ ((size_t)(uint32_t)line * 0x9E3779B1u); }

/* The slot of (code, line): the existing one, a new one, or NULL at the cap / out of memory. */
static sum_spot *spot_slot(ls_summary *s, PyObject *code, int32_t line) {
  if (s->spots_cap) {
    size_t mask = s->spots_cap - 1, j = spot_hash(code, line) & mask;
    while (s->spots[j].code) {
      if (s->spots[j].code == code && s->spots[j].line == line) return &s->spots[j];
      j = (j + 1) & mask;
    }
  }
  if (s->spots_len >= SUM_SPOTS_MAX) return NULL;
  if ((s->spots_len + 1) * 2 > s->spots_cap) { /* grow: load stays at most 1/2 */
    size_t cap = s->spots_cap ? s->spots_cap * 2 : 64;
    sum_spot *n = PyMem_Calloc(cap, sizeof *n);
    if (!n) return NULL;
    for (size_t i = 0; i < s->spots_cap; i++) {
      if (!s->spots[i].code) continue;
      size_t j = spot_hash(s->spots[i].code, s->spots[i].line) & (cap - 1);
      while (n[j].code) j = (j + 1) & (cap - 1);
      n[j] = s->spots[i];
    }
    PyMem_Free(s->spots);
    s->spots = n;
    s->spots_cap = cap;
  }
  size_t mask = s->spots_cap - 1, j = spot_hash(code, line) & mask;
  while (s->spots[j].code) j = (j + 1) & mask;
  sum_spot *sp = &s->spots[j];
  sp->code = Py_NewRef(code);
  sp->line = line;
  s->spots_len++;
  return sp;
}

static void spot_add(ls_summary *s, PyObject *code, int32_t line, const char *what, size_t nwhat, uint64_t count,
                     uint64_t total, uint64_t max) {
  sum_spot *sp = code ? spot_slot(s, code, line) : NULL;
  if (!sp) { s->spots_missed += count; return; }
  if (!sp->count && what) {
    if (nwhat >= sizeof sp->what) nwhat = sizeof sp->what - 1;
    memcpy(sp->what, what, nwhat);
    sp->what[nwhat] = 0;
  }
  sp->count += count;
  sp->total += total;
  if (max > sp->max) sp->max = max;
}

void summary_await(ls_summary *s, PyObject *code, int32_t line, const char *what, size_t nwhat, uint64_t d) {
  s->awaits++;
  s->await_ns += d;
  spot_add(s, code, line, what, nwhat, 1, d, d);
}

/* ---- blocks: the longest SUM_TOP_BLOCKS, longest first -------------------------------------- */
static void top_insert(ls_summary *s, const sum_block *b) {
  int n = s->ntop;
  if (n == SUM_TOP_BLOCKS && b->d <= s->top[n - 1].d) return;
  if (n == SUM_TOP_BLOCKS) { Py_XDECREF(s->top[n - 1].stack); n--; }
  int i = n;
  while (i > 0 && s->top[i - 1].d < b->d) { s->top[i] = s->top[i - 1]; i--; }
  s->top[i] = *b;
  Py_XINCREF(b->stack);
  s->ntop = n + 1;
}

void summary_block(ls_summary *s, uint64_t task, uint64_t t, uint64_t d, PyObject *stack, int elsewhere) {
  s->blocks++;
  s->blocked_ns += d;
  if (elsewhere) { s->blocks_elsewhere++; s->blocked_ns_elsewhere += d; }
  sum_block b = {d, t, task, stack && PyList_Check(stack) ? stack : NULL};
  top_insert(s, &b);
}

void summary_merge(ls_summary *dst, const ls_summary *src) {
  dst->sessions++;
  dst->tasks += src->tasks;
  if (src->max_live > dst->max_live) dst->max_live = src->max_live;
  dst->blocks += src->blocks;
  dst->blocked_ns += src->blocked_ns;
  dst->blocks_elsewhere += src->blocks_elsewhere;
  dst->blocked_ns_elsewhere += src->blocked_ns_elsewhere;
  for (int i = 0; i < src->ntop; i++) top_insert(dst, &src->top[i]);
  dst->lag_n += src->lag_n;
  dst->lag_sum += src->lag_sum;
  if (src->lag_max > dst->lag_max) dst->lag_max = src->lag_max;
  for (int b = 0; b < SUM_LAG_BUCKETS; b++) dst->lag_hist[b] += src->lag_hist[b];
  dst->awaits += src->awaits;
  dst->await_ns += src->await_ns;
  dst->spots_missed += src->spots_missed;
  for (size_t i = 0; i < src->spots_cap; i++) {
    const sum_spot *sp = &src->spots[i];
    if (sp->code) spot_add(dst, sp->code, sp->line, sp->what, strlen(sp->what), sp->count, sp->total, sp->max);
  }
}

/* ---- to Python ------------------------------------------------------------------------------ */
static int put(PyObject *d, const char *key, PyObject *v) {
  if (!v) return -1;
  int rc = PyDict_SetItemString(d, key, v);
  Py_DECREF(v);
  return rc;
}

static PyObject *u64(uint64_t v) { return PyLong_FromUnsignedLongLong((unsigned long long)v); }

static PyObject *blocks_list(const ls_summary *s) {
  PyObject *out = PyList_New(0);
  for (int i = 0; out && i < s->ntop; i++) {
    const sum_block *b = &s->top[i];
    PyObject *item = Py_BuildValue("{sKsKsKsO}", "d_ns", (unsigned long long)b->d, "t_ns", (unsigned long long)b->t,
                                   "task", (unsigned long long)b->task, "stack", b->stack ? b->stack : Py_None);
    if (!item || PyList_Append(out, item)) Py_CLEAR(out);
    Py_XDECREF(item);
  }
  return out;
}

static PyObject *spots_list(const ls_summary *s) {
  PyObject *out = PyList_New(0);
  for (size_t i = 0; out && i < s->spots_cap; i++) {
    const sum_spot *sp = &s->spots[i];
    if (!sp->code) continue;
    PyCodeObject *co = (PyCodeObject *)sp->code;
    PyObject *item = Py_BuildValue("{sOsisOsssKsKsK}", "file", co->co_filename, "line", (int)sp->line, "func",
                                   co->co_name, "what", sp->what, "count", (unsigned long long)sp->count,
                                   "total_ns", (unsigned long long)sp->total, "max_ns", (unsigned long long)sp->max);
    if (!item || PyList_Append(out, item)) Py_CLEAR(out);
    Py_XDECREF(item);
  }
  return out;
}

PyObject *summary_dict(const ls_summary *s) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  PyObject *lag = Py_BuildValue("{sKsKsKsK}", "n", (unsigned long long)s->lag_n, "avg_ns",
                                (unsigned long long)(s->lag_n ? s->lag_sum / s->lag_n : 0), "p95_ns",
                                (unsigned long long)lag_quantile(s, 0.95), "max_ns", (unsigned long long)s->lag_max);
  if (put(d, "tasks", u64(s->tasks)) || put(d, "max_concurrency", u64(s->max_live)) ||
      put(d, "blocks", u64(s->blocks)) || put(d, "blocked_ns", u64(s->blocked_ns)) ||
      put(d, "blocks_elsewhere", u64(s->blocks_elsewhere)) ||
      put(d, "blocked_ns_elsewhere", u64(s->blocked_ns_elsewhere)) ||
      put(d, "top_blocks", blocks_list(s)) || put(d, "lag", lag) || put(d, "awaits", u64(s->awaits)) ||
      put(d, "await_ns", u64(s->await_ns)) || put(d, "hot_spots", spots_list(s)) ||
      put(d, "awaits_not_kept", u64(s->spots_missed)) || put(d, "sessions", u64(s->sessions))) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

PyObject *mod_summary_total(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *on = NULL;
  if (!PyArg_ParseTuple(args, "|O", &on)) return NULL;
  if (on) {
    int v = PyObject_IsTrue(on);
    if (v < 0) return NULL;
    if (v && !G.sum_total) {
      if (!(G.sum_total = summary_new())) return PyErr_NoMemory();
    } else if (!v) {
      summary_free(G.sum_total);
      G.sum_total = NULL;
    }
    G.summary_all = v;
    Py_RETURN_NONE;
  }
  if (!G.sum_total) Py_RETURN_NONE;
  return summary_dict(G.sum_total);
}
