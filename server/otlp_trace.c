/* otlp_trace.c — a session's rows as an OTLP/JSON trace (otlp_trace.h), split into request bodies
 * under a size. Loading the rows is session_rows.c's; compressing and sending is otlp_push.c's.
 *
 * The trace: one per session (trace id = hash of the session id). A session span is its root
 * (the session's name, [0, end), lag samples as its events); a span per task, parented by its
 * parent task's span (a root task, or one whose parent is unknown, by the session span); a span
 * per await point under its task's span; a span per block under the span of the task it blocked
 * (the session span when it blocked outside any task). Times are the session's wall-clock start
 * plus t: started_unix_ns as the collector sent it, or else received_unix_ns (when the server
 * stored the first batch, less that batch's largest t). */
#include "otlp_trace.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"

#define SPAN_KIND_INTERNAL 1
#define STATUS_CODE_ERROR 2
#define TAIL "]}]}]}"

/* ---------------------------------------------------------------- ids */

/* 64-bit FNV-1a over a string, continuing from h. */
static uint64_t fnv(const char *s, uint64_t h)
{
  for(; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

/* A task's span id; the same function as before the await and block spans existed, so a task
 * keeps its span id across versions. Never 0 (an invalid span id). */
static uint64_t task_span_id(const char *session, int64_t task)
{
  return fnv(session, (uint64_t)task * 0x9e3779b97f4a7c15ull) | 1;
}

/* Span ids of the other spans: the row's identity, hashed with the session id. `kind` keeps
 * the kinds apart (a task id, an await's (task, t) and a block's (task, t, n) never meet). */
static uint64_t row_span_id(const char *session, char kind, int64_t a, int64_t b, int64_t c)
{
  char key[96];
  snprintf(key, sizeof(key), "%c:%lld:%lld:%lld", kind, (long long)a, (long long)b, (long long)c);
  return fnv(key, fnv(session, 0xcbf29ce484222325ull)) | 1;
}

static void hex_id(jbuf *o, uint64_t hi, uint64_t lo, int bytes)
{
  char buf[40];
  if(bytes == 16)
    snprintf(buf, sizeof(buf), "\"%016llx%016llx\"", (unsigned long long)hi, (unsigned long long)lo);
  else
    snprintf(buf, sizeof(buf), "\"%016llx\"", (unsigned long long)lo);
  jbuf_puts(o, buf);
}

/* ---------------------------------------------------------------- attributes */

static void attr_key(jbuf *o, int *first, const char *key)
{
  jbuf_puts(o, *first ? "{\"key\":" : ",{\"key\":");
  *first = 0;
  jbuf_str(o, key);
}

static void attr_str(jbuf *o, int *first, const char *key, const char *v)
{
  if(!v)
    return;
  attr_key(o, first, key);
  jbuf_puts(o, ",\"value\":{\"stringValue\":");
  jbuf_str(o, v);
  jbuf_puts(o, "}}");
}

static void attr_int(jbuf *o, int *first, const char *key, int64_t v)
{
  attr_key(o, first, key);
  jbuf_printf(o, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)v);
}

static void attr_double(jbuf *o, int *first, const char *key, double v)
{
  attr_key(o, first, key);
  jbuf_puts(o, ",\"value\":{\"doubleValue\":");
  jbuf_f64(o, v, 6);
  jbuf_puts(o, "}}");
}

/* code.filepath, code.lineno, code.function: where an await or a block happened. */
static void attr_code(jbuf *o, int *first, const char *file, int64_t line, const char *func)
{
  attr_str(o, first, "code.filepath", file);
  if(line >= 0)
    attr_int(o, first, "code.lineno", line);
  attr_str(o, first, "code.function", func);
}

/* ---------------------------------------------------------------- the builder */

typedef struct builder {
  const session_rows *w;
  const otlp_trace_options *o;
  uint64_t th, tl;          /* trace id */
  uint64_t session_span;
  uint64_t base;            /* unix ns of t = 0 */
  int64_t end;              /* the session's end (t) */
  int64_t *ids;             /* ids of the tasks, sorted: which parents have spans */
  jbuf head;                /* a request's opening, up to the spans array */
  jbuf req;                 /* the request being filled */
  jbuf span;                /* the span being written */
  int64_t req_spans;
  otlp_trace_emit emit;
  void *ctx;
} builder;

static void unix_ns(jbuf *o, const builder *b, int64_t t)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "\"%llu\"", (unsigned long long)(b->base + (uint64_t)(t > 0 ? t : 0)));
  jbuf_puts(o, buf);
}

static int has_task(const builder *b, int64_t id)
{
  size_t lo = 0, hi = b->w->nt;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(b->ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < b->w->nt && b->ids[lo] == id;
}

/* The span a task's child hangs under: the task's own, or the session's for task 0 or a task
 * whose task event never arrived (it has no span). */
static uint64_t span_of_task(const builder *b, int64_t task)
{
  return task > 0 && has_task(b, task) ? task_span_id(b->w->x.id, task) : b->session_span;
}

/* Sends the request filled so far. */
static int flush(builder *b)
{
  if(!b->req_spans)
    return 0;
  jbuf_puts(&b->req, TAIL);
  int rc = jbuf_status(&b->req);
  if(!rc)
    rc = b->emit(b->ctx, b->req.data, b->req.len, b->req_spans);
  jbuf_reset(&b->req);
  b->req_spans = 0;
  return rc;
}

/* Moves the span just written into the current request, sending that one first when the span
 * would take it past the size. */
static int add_span(builder *b)
{
  int rc = jbuf_status(&b->span);
  if(rc)
    return rc;
  size_t max = b->o->max_request_bytes;
  if(b->req_spans && max && b->req.len + 1 + b->span.len + strlen(TAIL) > max) {
    rc = flush(b);
    if(rc)
      return rc;
  }
  if(!b->req_spans)
    jbuf_append(&b->req, b->head.data, b->head.len);
  else
    jbuf_putc(&b->req, ',');
  jbuf_append(&b->req, b->span.data, b->span.len);
  b->req_spans++;
  jbuf_reset(&b->span);
  return jbuf_status(&b->req);
}

/* {"traceId":..,"spanId":..,"parentSpanId":..,"name":..,"kind":1,"startTimeUnixNano":..,
 * "endTimeUnixNano":..,"attributes":[   — the caller writes the attributes and closes. */
static void span_open(builder *b, uint64_t id, uint64_t parent, const char *name, int64_t start, int64_t end)
{
  jbuf *o = &b->span;
  jbuf_puts(o, "{\"traceId\":");
  hex_id(o, b->th, b->tl, 16);
  jbuf_puts(o, ",\"spanId\":");
  hex_id(o, 0, id, 8);
  if(parent) {
    jbuf_puts(o, ",\"parentSpanId\":");
    hex_id(o, 0, parent, 8);
  }
  jbuf_puts(o, ",\"name\":");
  jbuf_str(o, name);
  jbuf_printf(o, ",\"kind\":%d,\"startTimeUnixNano\":", SPAN_KIND_INTERNAL);
  unix_ns(o, b, start);
  jbuf_puts(o, ",\"endTimeUnixNano\":");
  unix_ns(o, b, end > start ? end : start);
  jbuf_puts(o, ",\"attributes\":[");
}

/* The attributes every backend search should find a session by (resource and session span). */
static void session_attrs(builder *b, jbuf *o, int *first)
{
  const store_session *x = &b->w->x;
  attr_str(o, first, "loopscope.session.id", x->id);
  attr_str(o, first, "loopscope.session.name", x->name);
  if(b->o->public_url) {
    size_t n = strlen(b->o->public_url);
    while(n && b->o->public_url[n - 1] == '/')
      n--;
    attr_key(o, first, "loopscope.session.url");
    jbuf_puts(o, ",\"value\":{\"stringValue\":");
    char *url = malloc(n + strlen(x->id) + 16);
    if(!url) {
      o->failed = o->failed ? o->failed : LS_ENOMEM;
      return;
    }
    snprintf(url, n + strlen(x->id) + 16, "%.*s/sessions/%s", (int)n, b->o->public_url, x->id);
    jbuf_str(o, url);
    free(url);
    jbuf_puts(o, "}}");
  }
}

static int cmp_i64(const void *a, const void *c)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)c;
  return (x > y) - (x < y);
}

/* Lag samples as events: all of them up to OTLP_TRACE_MAX_LAG_EVENTS, else the longest that
 * many (in time order). */
typedef struct lag_pick { int64_t t, d; } lag_pick;

static int cmp_lag_d_desc(const void *a, const void *c)
{
  const lag_pick *x = a, *y = c;
  if(x->d != y->d)
    return (x->d < y->d) - (x->d > y->d);
  return (x->t > y->t) - (x->t < y->t);
}

static int cmp_lag_t(const void *a, const void *c)
{
  const lag_pick *x = a, *y = c;
  return (x->t > y->t) - (x->t < y->t);
}

static int session_span(builder *b)
{
  const session_rows *w = b->w;
  const store_session *x = &w->x;
  jbuf *o = &b->span;
  span_open(b, b->session_span, 0, x->name ? x->name : x->id, 0, b->end);
  int first = 1;
  session_attrs(b, o, &first);
  attr_str(o, &first, "loopscope.session.start_source", x->started ? "collector" : "server");
  attr_int(o, &first, "loopscope.session.tasks", (int64_t)w->nt);
  if(x->dropped > 0)
    attr_int(o, &first, "loopscope.session.dropped_events", x->dropped);
  if(x->fraction > 0) { /* one request of a share recorded (meta.fraction): as sent, 0.1 not 0.100000 */
    attr_key(o, &first, "loopscope.session.fraction");
    jbuf_puts(o, ",\"value\":{\"doubleValue\":");
    jbuf_real(o, x->fraction);
    jbuf_puts(o, "}}");
  }
  size_t keep = w->nl < OTLP_TRACE_MAX_LAG_EVENTS ? w->nl : OTLP_TRACE_MAX_LAG_EVENTS;
  lag_pick *lag = malloc((w->nl ? w->nl : 1) * sizeof(*lag));
  int64_t *d = malloc((w->nl ? w->nl : 1) * sizeof(*d));
  if(!lag || !d) {
    free(lag);
    free(d);
    return LS_ENOMEM;
  }
  for(size_t i = 0; i < w->nl; i++) {
    lag[i] = (lag_pick){w->lag[i].t, w->lag[i].d};
    d[i] = w->lag[i].d;
  }
  if(w->nl) {
    stats_lag sum;
    if(stats_lag_summary(d, w->nl, &sum) == 0) {
      attr_int(o, &first, "loopscope.lag.samples", sum.samples);
      attr_double(o, &first, "loopscope.lag.p50_ms", sum.p50_ms);
      attr_double(o, &first, "loopscope.lag.p95_ms", sum.p95_ms);
      attr_double(o, &first, "loopscope.lag.max_ms", sum.max_ms);
    }
  }
  free(d);
  if(keep < w->nl)
    qsort(lag, w->nl, sizeof(*lag), cmp_lag_d_desc);
  qsort(lag, keep, sizeof(*lag), cmp_lag_t);
  jbuf_puts(o, "],\"events\":[");
  for(size_t i = 0; i < keep; i++) {
    jbuf_puts(o, i ? ",{\"timeUnixNano\":" : "{\"timeUnixNano\":");
    unix_ns(o, b, lag[i].t);
    jbuf_puts(o, ",\"name\":\"loop lag\",\"attributes\":[");
    int f = 1;
    attr_double(o, &f, "loopscope.lag.ms", (double)lag[i].d / 1e6);
    jbuf_puts(o, "]}");
  }
  free(lag);
  jbuf_putc(o, ']');
  if(keep < w->nl)
    jbuf_printf(o, ",\"droppedEventsCount\":%zu", w->nl - keep);
  jbuf_putc(o, '}');
  return add_span(b);
}

/* "ValueError: boom" → exception.type "ValueError", exception.message "boom"; text without
 * "Type: " is all message. */
static void exception_event(builder *b, int64_t t, const char *exc)
{
  jbuf *o = &b->span;
  jbuf_puts(o, ",\"events\":[{\"timeUnixNano\":");
  unix_ns(o, b, t);
  jbuf_puts(o, ",\"name\":\"exception\",\"attributes\":[");
  int f = 1;
  const char *colon = exc ? strstr(exc, ": ") : NULL;
  size_t tn = colon ? (size_t)(colon - exc) : 0;
  int named = tn > 0 && tn < 200 && strcspn(exc, " \n") >= tn;
  if(named) {
    attr_key(o, &f, "exception.type");
    jbuf_puts(o, ",\"value\":{\"stringValue\":");
    jbuf_strn(o, exc, tn);
    jbuf_puts(o, "}}");
    attr_str(o, &f, "exception.message", colon + 2);
  }
  else
    attr_str(o, &f, "exception.message", exc ? exc : "error");
  jbuf_puts(o, "]}]");
}

static int task_span(builder *b, const store_task *t, int64_t eff_parent)
{
  const char *sid = b->w->x.id;
  int64_t start = t->created > 0 ? t->created : 0;
  int64_t end = t->ended >= 0 ? t->ended : b->end;
  span_open(b, task_span_id(sid, t->id), eff_parent > 0 ? task_span_id(sid, eff_parent) : b->session_span,
            t->coro ? t->coro : t->name ? t->name : "task", start, end);
  jbuf *o = &b->span;
  int first = 1;
  attr_int(o, &first, "loopscope.task.id", t->id);
  attr_str(o, &first, "loopscope.task.name", t->name);
  attr_str(o, &first, "loopscope.task.coro", t->coro);
  attr_str(o, &first, "loopscope.task.state", t->state);
  attr_int(o, &first, "loopscope.task.busy_ns", t->busy_ns > 0 ? t->busy_ns : 0);
  attr_int(o, &first, "loopscope.task.wait_ns", t->wait_ns > 0 ? t->wait_ns : 0);
  if(t->ended < 0)
    attr_str(o, &first, "loopscope.task.open", "no done event: ends with the session");
  if(t->status >= 0)
    attr_int(o, &first, "http.response.status_code", t->status);
  jbuf_putc(o, ']');
  if(t->state && !strcmp(t->state, "error")) {
    exception_event(b, end, t->exc);
    jbuf_printf(o, ",\"status\":{\"code\":%d,\"message\":", STATUS_CODE_ERROR);
    jbuf_str(o, t->exc ? t->exc : "error");
    jbuf_putc(o, '}');
  }
  jbuf_putc(o, '}');
  return add_span(b);
}

static int await_span(builder *b, const store_await *a)
{
  span_open(b, row_span_id(b->w->x.id, 'a', a->task, a->t, 0), span_of_task(b, a->task),
            a->what ? a->what : "await", a->t, a->t + a->d);
  jbuf *o = &b->span;
  int first = 1;
  attr_code(o, &first, a->file, a->line, a->func);
  attr_int(o, &first, "loopscope.task.id", a->task);
  jbuf_puts(o, "]}");
  return add_span(b);
}

/* The block's stack (JSON, outermost frame first) as a Python traceback: code.stacktrace. */
static void stacktrace(jbuf *o, int *first, const char *stack)
{
  cJSON *j = stack ? cJSON_Parse(stack) : NULL;
  if(!cJSON_IsArray(j)) {
    cJSON_Delete(j);
    attr_str(o, first, "code.stacktrace", stack);
    return;
  }
  jbuf text;
  jbuf_init(&text, (size_t)16 << 20);
  jbuf_puts(&text, "Traceback (most recent call last):\n");
  const cJSON *f;
  cJSON_ArrayForEach(f, j) {
    const char *file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "file"));
    const char *func = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "func"));
    const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "src"));
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(f, "line");
    jbuf_printf(&text, "  File \"%s\", line %lld, in %s\n", file ? file : "?",
                cJSON_IsNumber(line) ? (long long)line->valuedouble : -1LL, func ? func : "?");
    if(src)
      jbuf_printf(&text, "    %s\n", src);
  }
  cJSON_Delete(j);
  if(jbuf_status(&text))
    o->failed = o->failed ? o->failed : jbuf_status(&text);
  else
    attr_str(o, first, "code.stacktrace", text.data);
  jbuf_free(&text);
}

static int block_span(builder *b, const store_block *x, int64_t nth)
{
  span_open(b, row_span_id(b->w->x.id, 'b', x->task, x->t, nth), span_of_task(b, x->task),
            "event loop blocked", x->t, x->t + x->d);
  jbuf *o = &b->span;
  int first = 1;
  attr_code(o, &first, x->file, x->line, x->func); /* the innermost frame: the culprit */
  attr_str(o, &first, "loopscope.block.source", x->src);
  attr_double(o, &first, "loopscope.block.ms", (double)x->d / 1e6);
  attr_int(o, &first, "loopscope.task.id", x->task);
  if(x->stack_t >= 0) /* when the stack was taken, in ms after the block began */
    attr_double(o, &first, "loopscope.block.stack_at_ms", (double)x->stack_t / 1e6);
  if(x->elsewhere) { /* a stall this session suffered from another session's task, or none's */
    attr_int(o, &first, "loopscope.block.elsewhere", 1);
    if(x->from_session)
      attr_str(o, &first, "loopscope.block.from_session", x->from_session);
    if(x->from_task >= 0)
      attr_int(o, &first, "loopscope.block.from_task", x->from_task);
  }
  stacktrace(o, &first, x->stack);
  jbuf_puts(o, "]}");
  return add_span(b);
}

/* Awaits by (task, t): the store hands them longest first. */
static int cmp_await(const void *a, const void *c)
{
  const store_await *x = *(const store_await *const *)a, *y = *(const store_await *const *)c;
  if(x->task != y->task)
    return (x->task > y->task) - (x->task < y->task);
  return (x->t > y->t) - (x->t < y->t);
}

static uint64_t session_base(const store_session *x)
{
  uint64_t base = 0;
  if(x->started)
    for(const char *p = x->started; *p >= '0' && *p <= '9'; p++)
      base = base * 10 + (uint64_t)(*p - '0'); /* validated at ingest: at most 19 digits */
  if(base)
    return base;
  if(x->received_ns > 0)
    return (uint64_t)x->received_ns;
  /* rows without either exist only when built by hand (every stored session has received_ns) */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int build_spans(builder *b)
{
  const session_rows *w = b->w;
  int rc = session_span(b);
  /* a task's parent as the tree sees it: 0 for roots, missing parents and parent loops */
  stats_task *tree = malloc((w->nt ? w->nt : 1) * sizeof(*tree));
  size_t *order = malloc((w->nt ? w->nt : 1) * sizeof(*order));
  if(!tree || !order)
    rc = rc ? rc : LS_ENOMEM;
  for(size_t i = 0; !rc && i < w->nt; i++)
    tree[i] = (stats_task){w->tasks[i].id, w->tasks[i].parent, w->tasks[i].created, 0, 0};
  if(!rc && w->nt)
    rc = stats_task_tree(tree, w->nt, order);
  for(size_t i = 0; !rc && i < w->nt; i++)
    rc = task_span(b, &w->tasks[i], tree[i].eff_parent);
  free(tree);
  free(order);
  if(rc)
    return rc;
  const store_await **aw = malloc((w->na ? w->na : 1) * sizeof(*aw));
  if(!aw)
    return LS_ENOMEM;
  for(size_t i = 0; i < w->na; i++)
    aw[i] = &w->aw[i];
  qsort(aw, w->na, sizeof(*aw), cmp_await);
  for(size_t i = 0; !rc && i < w->na; i++)
    rc = await_span(b, aw[i]);
  free(aw);
  for(size_t i = 0; !rc && i < w->nb; i++) {
    /* blocks come by t: earlier ones of the same (task, t) number this one's span id */
    int64_t nth = 0;
    for(size_t k = i; k > 0 && w->bl[k - 1].t == w->bl[i].t; k--)
      nth += w->bl[k - 1].task == w->bl[i].task;
    rc = block_span(b, &w->bl[i], nth);
  }
  return rc ? rc : flush(b);
}

int otlp_trace_build(const session_rows *w, const otlp_trace_options *o, otlp_trace_emit emit, void *ctx)
{
  const store_session *x = &w->x;
  builder b;
  memset(&b, 0, sizeof(b));
  b.w = w;
  b.o = o;
  b.emit = emit;
  b.ctx = ctx;
  b.th = fnv(x->id, 0xcbf29ce484222325ull);
  b.tl = fnv(x->id, b.th);
  b.session_span = row_span_id(x->id, 's', 0, 0, 0);
  b.base = session_base(x);
  b.end = x->ended ? x->end_t : x->max_t;
  if(x->max_t > b.end)
    b.end = x->max_t; /* nothing outlives the session span */
  jbuf_init(&b.head, (size_t)1 << 20);
  jbuf_init(&b.req, o->max_body_bytes);
  jbuf_init(&b.span, o->max_body_bytes);
  b.ids = malloc((w->nt ? w->nt : 1) * sizeof(*b.ids));
  if(!b.ids)
    return LS_ENOMEM;
  for(size_t i = 0; i < w->nt; i++)
    b.ids[i] = w->tasks[i].id;
  qsort(b.ids, w->nt, sizeof(*b.ids), cmp_i64);

  /* the resource and scope, repeated at the head of every request */
  jbuf *h = &b.head;
  jbuf_puts(h, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  int first = 1;
  attr_str(h, &first, "service.name", x->service ? x->service : "unknown_service:python");
  attr_str(h, &first, "host.name", x->host);
  if(x->pid >= 0)
    attr_int(h, &first, "process.pid", x->pid);
  attr_str(h, &first, "process.runtime.name", x->python ? "cpython" : NULL);
  attr_str(h, &first, "process.runtime.version", x->python);
  session_attrs(&b, h, &first);
  jbuf_puts(h, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"loopscope\",\"version\":\"" LOOPSCOPE_VERSION
               "\"},\"spans\":[");
  int rc = jbuf_status(h);
  if(!rc)
    rc = build_spans(&b);
  free(b.ids);
  jbuf_free(&b.head);
  jbuf_free(&b.req);
  jbuf_free(&b.span);
  return rc;
}

int64_t otlp_trace_spans(const session_rows *w)
{
  return 1 + (int64_t)w->nt + (int64_t)w->na + (int64_t)w->nb;
}

static int append_body(void *ctx, const char *body, size_t len, int64_t spans)
{
  (void)spans;
  jbuf *out = ctx;
  jbuf_append(out, body, len);
  return jbuf_status(out);
}

int otlp_trace_export(store *s, const char *id, const char *public_url, jbuf *out)
{
  session_rows w;
  int rc = session_rows_read(s, id, &w);
  if(rc)
    return rc;
  otlp_trace_options o = {public_url, 0, out->max};
  rc = otlp_trace_build(&w, &o, append_body, out);
  session_rows_free(&w);
  return rc ? rc : jbuf_status(out);
}
