/* export.c — session export (export.h): reads every row of a session through the store, then
 * writes it as ingest-v1 batches ("export-<session>", one per line) or as Chrome Trace Event JSON;
 * OTLP is otlp_trace.c's. Which format a request asked for is http.c's business. */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "otlp_trace.h"
#include "session_rows.h"

/* Optional members: written only when known. *comma says whether one must come first. */
static void opt_i64_c(jbuf *o, const char *key, int64_t v, int *comma)
{
  if(v >= 0) {
    jbuf_key(o, key, *comma);
    jbuf_i64(o, v);
    *comma = 1;
  }
}

static void opt_str_c(jbuf *o, const char *key, const char *v, int *comma)
{
  if(v) {
    jbuf_key(o, key, *comma);
    jbuf_str(o, v);
    *comma = 1;
  }
}

static void opt_i64(jbuf *o, const char *key, int64_t v)
{
  int comma = 1;
  opt_i64_c(o, key, v, &comma);
}

static void opt_str(jbuf *o, const char *key, const char *v)
{
  int comma = 1;
  opt_str_c(o, key, v, &comma);
}

/* The JSON export is JSON Lines of ingest-v1 batches of the session, so that every line can be
 * posted back to /api/v1/ingest: a batch holds at most EXPORT_BATCH_EVENTS events (ingest takes
 * 100,000) and is cut once it passes EXPORT_BATCH_BYTES (the default --max-body is 16 MiB; one
 * event more stays far below it: strings are capped at ingest). A session within both limits is
 * one line, the single batch of earlier versions. */
#define EXPORT_BATCH_EVENTS 50000
#define EXPORT_BATCH_BYTES ((size_t)8 << 20)
#define BATCH_ID_MAX 128 /* as ingest_id_ok: 1–128 bytes */

typedef struct batch_writer {
  const session_rows *w;
  jbuf *out;
  char stem[BATCH_ID_MAX + 1]; /* batch ids: stem, then stem-1, stem-2, ... */
  size_t events;               /* in the open batch */
  size_t start;                /* out->len where the open batch began */
  unsigned k;                  /* batches opened */
} batch_writer;

/* "export-<session>", or for a session id too long to leave room for "-<k>", its first 100
 * bytes and the CRC-32 of the whole id ("~" and hex digits are batch id characters too). */
static void batch_stem(const char *id, char *stem, size_t cap)
{
  size_t n = strlen(id);
  if(7 + n + 11 <= BATCH_ID_MAX)
    snprintf(stem, cap, "export-%s", id);
  else
    snprintf(stem, cap, "export-%.100s~%08lx", id, (unsigned long)crc32(0L, (const Bytef *)id, (uInt)n));
}

static void batch_open(batch_writer *b)
{
  jbuf *out = b->out;
  const store_session *x = &b->w->x;
  /* ids are [A-Za-z0-9._:@+~=-]: nothing to escape */
  if(b->k == 0)
    jbuf_printf(out, "{\"v\":1,\"batch\":\"%s\"", b->stem);
  else
    jbuf_printf(out, "{\"v\":1,\"batch\":\"%s-%u\"", b->stem, b->k);
  jbuf_key(out, "session", 1);
  jbuf_str(out, x->id);
  if(x->has_meta) { /* in every batch: each one is a complete ingest batch on its own */
    jbuf_key(out, "meta", 1);
    jbuf_putc(out, '{');
    int comma = 0;
    opt_str_c(out, "name", x->name, &comma);
    opt_str_c(out, "service", x->service, &comma);
    opt_i64_c(out, "pid", x->pid, &comma);
    opt_i64_c(out, "loop", x->loop, &comma);
    opt_str_c(out, "host", x->host, &comma);
    opt_str_c(out, "python", x->python, &comma);
    opt_str_c(out, "started_unix_ns", x->started, &comma);
    opt_str_c(out, "route", x->route, &comma);
    if(x->fraction > 0) { /* as sent: the copy's endpoints count what the original's did */
      jbuf_key(out, "fraction", comma);
      jbuf_real(out, x->fraction);
      comma = 1;
    }
    jbuf_putc(out, '}');
  }
  jbuf_puts(out, ",\"events\":[");
  b->events = 0;
  b->start = out->len;
  b->k++;
}

static void batch_close(batch_writer *b)
{
  jbuf_puts(b->out, "]}\n");
}

/* Starts the next event: a new batch first when the open one is full, then the comma. */
static void next_event(batch_writer *b)
{
  if(b->events == EXPORT_BATCH_EVENTS || b->out->len - b->start >= EXPORT_BATCH_BYTES) {
    batch_close(b);
    batch_open(b);
  }
  jbuf_puts(b->out, b->events ? ",{\"k\":" : "{\"k\":");
  b->events++;
}

static int write_json(const session_rows *w, jbuf *out)
{
  batch_writer bw = {.w = w, .out = out};
  batch_stem(w->x.id, bw.stem, sizeof(bw.stem));
  batch_writer *b = &bw;
  batch_open(b);
  for(size_t i = 0; i < w->nt; i++) {
    next_event(b);
    jbuf_puts(out, "\"task\",\"id\":");
    jbuf_i64(out, w->tasks[i].id);
    jbuf_puts(out, ",\"parent\":");
    jbuf_i64(out, w->tasks[i].parent);
    opt_str(out, "name", w->tasks[i].name);
    opt_str(out, "coro", w->tasks[i].coro);
    jbuf_puts(out, ",\"t\":");
    jbuf_i64(out, w->tasks[i].created);
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->ns; i++) {
    next_event(b);
    jbuf_printf(out, "\"step\",\"id\":%lld,\"t\":%lld,\"d\":%lld}", (long long)w->steps[i].task,
                (long long)w->steps[i].t, (long long)w->steps[i].d);
  }
  for(size_t i = 0; i < w->na; i++) {
    next_event(b);
    jbuf_printf(out, "\"await\",\"id\":%lld,\"t\":%lld,\"d\":%lld", (long long)w->aw[i].task,
                (long long)w->aw[i].t, (long long)w->aw[i].d);
    opt_str(out, "what", w->aw[i].what);
    opt_str(out, "file", w->aw[i].file);
    opt_i64(out, "line", w->aw[i].line);
    opt_str(out, "func", w->aw[i].func);
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->nb; i++) {
    next_event(b);
    jbuf_printf(out, "\"block\",\"id\":%lld,\"t\":%lld,\"d\":%lld,", (long long)w->bl[i].task,
                (long long)w->bl[i].t, (long long)w->bl[i].d);
    if(w->bl[i].elsewhere) { /* as ingested: from_session (null: none) and from_task */
      jbuf_key(out, "from_session", 0); jbuf_str(out, w->bl[i].from_session);
      if(w->bl[i].from_task >= 0) { jbuf_key(out, "from_task", 1); jbuf_i64(out, w->bl[i].from_task); }
      jbuf_putc(out, ',');
    }
    if(w->bl[i].stack_t >= 0) { jbuf_key(out, "stack_t", 0); jbuf_i64(out, w->bl[i].stack_t); jbuf_putc(out, ','); }
    jbuf_puts(out, "\"stack\":");
    jbuf_puts(out, w->bl[i].stack ? w->bl[i].stack : "[]");
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->nl; i++) {
    next_event(b);
    jbuf_printf(out, "\"lag\",\"t\":%lld,\"d\":%lld}", (long long)w->lag[i].t, (long long)w->lag[i].d);
  }
  for(size_t i = 0; i < w->nt; i++) {
    if(w->tasks[i].ended < 0)
      continue;
    next_event(b);
    jbuf_printf(out, "\"done\",\"id\":%lld,\"t\":%lld", (long long)w->tasks[i].id, (long long)w->tasks[i].ended);
    opt_str(out, "state", w->tasks[i].state);
    opt_str(out, "exc", w->tasks[i].exc);
    opt_i64(out, "status", w->tasks[i].status);
    jbuf_putc(out, '}');
  }
  /* the session's own totals (drop counts add up, the end is the session's) once, in the last */
  if(w->x.dropped > 0) {
    next_event(b);
    jbuf_printf(out, "\"drop\",\"n\":%lld}", (long long)w->x.dropped);
  }
  if(w->x.ended) {
    next_event(b);
    jbuf_printf(out, "\"end\",\"t\":%lld}", (long long)w->x.end_t);
  }
  batch_close(b);
  return 0;
}

/* ---------------------------------------------------------------- Chrome trace */

/* Nanoseconds as Chrome's microseconds, exactly: "123.456". */
static void micros(jbuf *o, int64_t ns)
{
  jbuf_i64(o, ns / 1000);
  char frac[5] = {'.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10), (char)('0' + ns % 10), 0};
  jbuf_puts(o, frac);
}

/* The opening of one trace event: {"name":<name>,"cat":<cat>,"ph":<ph>,"pid":1,"tid":<tid>,"ts":<ts> */
static void chrome_event(jbuf *o, int *first, const char *name, const char *cat, const char *ph,
                         int64_t tid, int64_t ts)
{
  jbuf_puts(o, *first ? "\n{\"name\":" : ",\n{\"name\":");
  *first = 0;
  jbuf_str(o, name);
  jbuf_puts(o, ",\"cat\":");
  jbuf_str(o, cat);
  jbuf_puts(o, ",\"ph\":");
  jbuf_str(o, ph);
  jbuf_puts(o, ",\"pid\":1,\"tid\":");
  jbuf_i64(o, tid);
  jbuf_puts(o, ",\"ts\":");
  micros(o, ts);
}

/* One complete (X) event of a track: a task's step or await on the task's thread, or a block on
 * the loop's (tid 0). */
enum { SLICE_BLOCK, SLICE_STEP, SLICE_AWAIT };
typedef struct chrome_slice {
  int64_t tid, t, d;
  int kind;
  size_t idx; /* in steps, aw or bl */
} chrome_slice;

/* Per track by start, the longer of two slices starting together first (it encloses the other). */
static int cmp_slice(const void *a, const void *b)
{
  const chrome_slice *x = a, *y = b;
  if(x->tid != y->tid)
    return (x->tid > y->tid) - (x->tid < y->tid);
  if(x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  if(x->d != y->d)
    return (x->d < y->d) - (x->d > y->d);
  return (x->kind > y->kind) - (x->kind < y->kind);
}

static void chrome_slice_event(jbuf *o, int *first, const session_rows *w, const chrome_slice *s, int64_t dur)
{
  char label[160];
  const char *name = "step", *cat = "step";
  const store_await *a = s->kind == SLICE_AWAIT ? &w->aw[s->idx] : NULL;
  const store_block *b = s->kind == SLICE_BLOCK ? &w->bl[s->idx] : NULL;
  if(a) {
    snprintf(label, sizeof(label), "await %.140s", a->what ? a->what : "?");
    name = label;
    cat = "await";
  }
  else if(b) {
    snprintf(label, sizeof(label), "blocked: %.140s", b->src ? b->src : b->func ? b->func : "?");
    name = label;
    cat = "block";
  }
  chrome_event(o, first, name, cat, "X", s->tid, s->t);
  jbuf_puts(o, ",\"dur\":");
  micros(o, dur);
  if(!a && !b && dur == s->d) { /* a step has no args unless it was cut */
    jbuf_putc(o, '}');
    return;
  }
  jbuf_puts(o, ",\"args\":{");
  if(a) {
    jbuf_puts(o, "\"file\":");
    jbuf_str(o, a->file);
    jbuf_puts(o, ",\"line\":");
    if(a->line >= 0)
      jbuf_i64(o, a->line);
    else
      jbuf_puts(o, "null");
    jbuf_puts(o, ",\"func\":");
    jbuf_str(o, a->func);
  }
  else if(b) {
    jbuf_puts(o, "\"task\":");
    jbuf_i64(o, b->task);
    jbuf_puts(o, ",\"stack\":");
    jbuf_puts(o, b->stack ? b->stack : "[]");
  }
  if(dur < s->d) { /* cut to fit in the slice enclosing it (see write_slices) */
    jbuf_puts(o, a || b ? ",\"clipped_ns\":" : "\"clipped_ns\":");
    jbuf_i64(o, s->d - dur);
  }
  jbuf_puts(o, "}}");
}

/* Every step, await and block as an X event, track by track in time order. Trace viewers draw a
 * track's slices as a stack and need each slice either inside or after the one before it: a
 * collector's steps and awaits of one task alternate and its blocks follow one another, but an
 * ingested session may say otherwise, so a slice that starts inside another and ends after it
 * is cut at that one's end (args.clipped_ns says by how much). */
static int write_slices(const session_rows *w, jbuf *out, int *first)
{
  size_t n = w->ns + w->na + w->nb;
  chrome_slice *sl = malloc((n ? n : 1) * sizeof(*sl));
  int64_t *open = malloc((n ? n : 1) * sizeof(*open)); /* ends of the enclosing slices */
  if(!sl || !open) {
    free(sl);
    free(open);
    return LS_ENOMEM;
  }
  size_t k = 0;
  for(size_t i = 0; i < w->ns; i++)
    sl[k++] = (chrome_slice){w->steps[i].task, w->steps[i].t, w->steps[i].d, SLICE_STEP, i};
  for(size_t i = 0; i < w->na; i++)
    sl[k++] = (chrome_slice){w->aw[i].task, w->aw[i].t, w->aw[i].d, SLICE_AWAIT, i};
  for(size_t i = 0; i < w->nb; i++)
    sl[k++] = (chrome_slice){0, w->bl[i].t, w->bl[i].d, SLICE_BLOCK, i};
  qsort(sl, n, sizeof(*sl), cmp_slice);
  size_t depth = 0;
  for(size_t i = 0; i < n; i++) {
    if(i && sl[i].tid != sl[i - 1].tid)
      depth = 0;
    while(depth && open[depth - 1] <= sl[i].t)
      depth--;
    int64_t end = sl[i].t + sl[i].d; /* below 2^53: checked at ingest */
    if(depth && end > open[depth - 1])
      end = open[depth - 1];
    chrome_slice_event(out, first, w, &sl[i], end - sl[i].t);
    open[depth++] = end;
  }
  free(open);
  free(sl);
  return 0;
}

/* The first step of task id at or after its index range [lo, hi) of steps sorted by task, t. */
static size_t steps_of(const session_rows *w, int64_t id, size_t *hi)
{
  size_t lo = 0, h = w->ns;
  while(lo < h) {
    size_t mid = lo + (h - lo) / 2;
    if(w->steps[mid].task < id)
      lo = mid + 1;
    else
      h = mid;
  }
  size_t e = lo;
  while(e < w->ns && w->steps[e].task == id)
    e++;
  *hi = e;
  return lo;
}

/* A time inside step s, as near to t as may be: flow events bind to the slice around them, and
 * a time on a slice's edge (or 1 ns off, after a viewer's microseconds-to-nanoseconds rounding)
 * may land outside it. -1 when the step is too short to have an inside. */
static int64_t inside_step(const store_step *s, int64_t t)
{
  if(s->d < 4)
    return -1;
  int64_t m = s->d / 4 < 1000 ? s->d / 4 : 1000;
  if(t < s->t + m)
    return s->t + m;
  if(t > s->t + s->d - m)
    return s->t + s->d - m;
  return t;
}

/* Parent -> child flow arrows (v1 flow events, id = the child's task id): from inside the
 * parent's step that created the child, to inside the child's first step (bp "e": bound to the
 * slice around it). A child created outside its parent's steps (no step of the parent holds its
 * creation time) or that never ran gets none; otherData.unbound_flows counts them. */
static size_t write_flows(const session_rows *w, jbuf *out, int *first)
{
  size_t unbound = 0;
  for(size_t i = 0; i < w->nt; i++) {
    const store_task *t = &w->tasks[i];
    if(t->parent <= 0)
      continue;
    size_t phi, chi;
    size_t plo = steps_of(w, t->parent, &phi), clo = steps_of(w, t->id, &chi);
    const store_step *maker = NULL;
    for(size_t lo = plo, hi = phi; lo < hi;) { /* the parent's last step starting at or before */
      size_t mid = lo + (hi - lo) / 2;
      if(w->steps[mid].t <= t->created) {
        maker = &w->steps[mid];
        lo = mid + 1;
      }
      else
        hi = mid;
    }
    int64_t from = maker && t->created <= maker->t + maker->d ? inside_step(maker, t->created) : -1;
    int64_t to = clo < chi ? inside_step(&w->steps[clo], w->steps[clo].t + w->steps[clo].d / 2) : -1;
    if(from < 0 || to < 0) {
      unbound++;
      continue;
    }
    chrome_event(out, first, "spawn", "task", "s", t->parent, from);
    jbuf_puts(out, ",\"id\":");
    jbuf_i64(out, t->id);
    jbuf_putc(out, '}');
    chrome_event(out, first, "spawn", "task", "f", t->id, to);
    jbuf_puts(out, ",\"bp\":\"e\",\"id\":");
    jbuf_i64(out, t->id);
    jbuf_putc(out, '}');
  }
  return unbound;
}

/* Chrome Trace Event JSON (opens in Perfetto and chrome://tracing), times in microseconds with
 * nanosecond decimals: one process; a thread per task (tid = task id, named "<name> <coro>") with
 * its steps and awaits, which alternate; the loop's thread (tid 0, "event loop") with the blocks;
 * lag as the "loop lag" counter; task creation and completion as instant events; parent -> child
 * flow arrows. */
static int write_chrome(const session_rows *w, jbuf *out)
{
  const store_session *x = &w->x;
  int first = 1;
  char label[160];
  jbuf_puts(out, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
  chrome_event(out, &first, "process_name", "__metadata", "M", 0, 0);
  jbuf_puts(out, ",\"args\":{\"name\":");
  jbuf_str(out, x->name ? x->name : x->id);
  jbuf_puts(out, "}}");
  chrome_event(out, &first, "thread_name", "__metadata", "M", 0, 0);
  jbuf_puts(out, ",\"args\":{\"name\":\"event loop\"}}");
  for(size_t i = 0; i < w->nt; i++) {
    const store_task *t = &w->tasks[i];
    snprintf(label, sizeof(label), "%.60s %.90s", t->name ? t->name : "task", t->coro ? t->coro : "");
    chrome_event(out, &first, "thread_name", "__metadata", "M", t->id, 0);
    jbuf_puts(out, ",\"args\":{\"name\":");
    jbuf_str(out, label);
    jbuf_puts(out, "}}");
    chrome_event(out, &first, "created", "task", "i", t->id, t->created);
    jbuf_puts(out, ",\"s\":\"t\",\"args\":{\"parent\":");
    jbuf_i64(out, t->parent);
    jbuf_puts(out, "}}");
    if(t->ended >= 0) {
      chrome_event(out, &first, "done", "task", "i", t->id, t->ended);
      jbuf_puts(out, ",\"s\":\"t\",\"args\":{\"state\":");
      jbuf_str(out, t->state);
      jbuf_puts(out, ",\"exc\":");
      jbuf_str(out, t->exc);
      if(t->status >= 0) {
        jbuf_puts(out, ",\"status\":");
        jbuf_i64(out, t->status);
      }
      jbuf_puts(out, "}}");
    }
  }
  int rc = write_slices(w, out, &first);
  if(rc)
    return rc;
  size_t unbound = write_flows(w, out, &first);
  for(size_t i = 0; i < w->nl; i++) {
    chrome_event(out, &first, "loop lag", "lag", "C", 0, w->lag[i].t);
    jbuf_puts(out, ",\"args\":{\"lag_ms\":");
    jbuf_f64(out, (double)w->lag[i].d / 1e6, 6);
    jbuf_puts(out, "}}");
  }
  /* after the events: Perfetto reads otherData wherever it is */
  jbuf_puts(out, "\n],\"otherData\":{\"session\":");
  jbuf_str(out, x->id);
  jbuf_puts(out, ",\"started_unix_ns\":");
  jbuf_str(out, x->started);
  jbuf_printf(out, ",\"unbound_flows\":%zu}}", unbound);
  return 0;
}

int export_session(store *s, const char *id, const char *format, jbuf *out)
{
  int (*write)(const session_rows *, jbuf *) = NULL;
  if(!strcmp(format, "json"))
    write = write_json;
  else if(!strcmp(format, "chrome"))
    write = write_chrome;
  else if(!strcmp(format, "otlp"))
    return otlp_trace_export(s, id, NULL, out);
  else
    return LS_EINVAL;
  session_rows w;
  int rc = session_rows_read(s, id, &w);
  if(rc)
    return rc;
  rc = write(&w, out);
  session_rows_free(&w);
  return rc ? rc : jbuf_status(out);
}

const char *export_media_type(const char *format, const jbuf *out)
{
  /* a batch never holds a raw newline (strings are escaped): one before the last byte ends a line */
  if(!strcmp(format, "json") && out->len > 1 && memchr(out->data, '\n', out->len - 1))
    return "application/x-ndjson";
  return "application/json";
}
