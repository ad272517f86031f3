/* export.c — session export (export.h): reads every row of a session through the store, then
 * writes it as one ingest-v1 batch ("export-<session>") or as Chrome Trace Event JSON; OTLP is
 * otlp_trace.c's. Which format a request asked for is http.c's business. */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The comma between events: every event after the first starts with one. */
static void next_event(jbuf *o, int *first)
{
  jbuf_puts(o, *first ? "{\"k\":" : ",{\"k\":");
  *first = 0;
}

static int write_json(const session_rows *w, jbuf *out)
{
  jbuf_puts(out, "{\"v\":1,\"batch\":");
  jbuf_printf(out, "\"export-%s\"", w->x.id); /* ids are [A-Za-z0-9._:@+~=-]: nothing to escape */
  jbuf_key(out, "session", 1);
  jbuf_str(out, w->x.id);
  if(w->x.has_meta) {
    jbuf_key(out, "meta", 1);
    jbuf_putc(out, '{');
    int comma = 0;
    opt_str_c(out, "name", w->x.name, &comma);
    opt_str_c(out, "service", w->x.service, &comma);
    opt_i64_c(out, "pid", w->x.pid, &comma);
    opt_str_c(out, "host", w->x.host, &comma);
    opt_str_c(out, "python", w->x.python, &comma);
    opt_str_c(out, "started_unix_ns", w->x.started, &comma);
    jbuf_putc(out, '}');
  }
  jbuf_puts(out, ",\"events\":[");
  int first = 1;
  for(size_t i = 0; i < w->nt; i++) {
    next_event(out, &first);
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
    next_event(out, &first);
    jbuf_printf(out, "\"step\",\"id\":%lld,\"t\":%lld,\"d\":%lld}", (long long)w->steps[i].task,
                (long long)w->steps[i].t, (long long)w->steps[i].d);
  }
  for(size_t i = 0; i < w->na; i++) {
    next_event(out, &first);
    jbuf_printf(out, "\"await\",\"id\":%lld,\"t\":%lld,\"d\":%lld", (long long)w->aw[i].task,
                (long long)w->aw[i].t, (long long)w->aw[i].d);
    opt_str(out, "what", w->aw[i].what);
    opt_str(out, "file", w->aw[i].file);
    opt_i64(out, "line", w->aw[i].line);
    opt_str(out, "func", w->aw[i].func);
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->nb; i++) {
    next_event(out, &first);
    jbuf_printf(out, "\"block\",\"id\":%lld,\"t\":%lld,\"d\":%lld,\"stack\":", (long long)w->bl[i].task,
                (long long)w->bl[i].t, (long long)w->bl[i].d);
    jbuf_puts(out, w->bl[i].stack ? w->bl[i].stack : "[]");
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->nl; i++) {
    next_event(out, &first);
    jbuf_printf(out, "\"lag\",\"t\":%lld,\"d\":%lld}", (long long)w->lag[i].t, (long long)w->lag[i].d);
  }
  for(size_t i = 0; i < w->nt; i++) {
    if(w->tasks[i].ended < 0)
      continue;
    next_event(out, &first);
    jbuf_printf(out, "\"done\",\"id\":%lld,\"t\":%lld", (long long)w->tasks[i].id, (long long)w->tasks[i].ended);
    opt_str(out, "state", w->tasks[i].state);
    opt_str(out, "exc", w->tasks[i].exc);
    opt_i64(out, "status", w->tasks[i].status);
    jbuf_putc(out, '}');
  }
  if(w->x.dropped > 0) {
    next_event(out, &first);
    jbuf_printf(out, "\"drop\",\"n\":%lld}", (long long)w->x.dropped);
  }
  if(w->x.ended) {
    next_event(out, &first);
    jbuf_printf(out, "\"end\",\"t\":%lld}", (long long)w->x.end_t);
  }
  jbuf_puts(out, "]}");
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

/* Chrome Trace Event JSON (opens in Perfetto and chrome://tracing): one process, one thread per
 * task (tid = task id) with its steps and awaits as complete events, the loop's blocks on
 * tid 0, lag as a counter, task creation and completion as instant events. */
static int write_chrome(const session_rows *w, jbuf *out)
{
  const store_session *x = &w->x;
  int first = 1;
  char label[160];
  jbuf_puts(out, "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"session\":");
  jbuf_str(out, x->id);
  jbuf_puts(out, ",\"started_unix_ns\":");
  jbuf_str(out, x->started);
  jbuf_puts(out, "},\"traceEvents\":[");
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
  for(size_t i = 0; i < w->ns; i++) {
    chrome_event(out, &first, "step", "step", "X", w->steps[i].task, w->steps[i].t);
    jbuf_puts(out, ",\"dur\":");
    micros(out, w->steps[i].d);
    jbuf_putc(out, '}');
  }
  for(size_t i = 0; i < w->na; i++) {
    const store_await *a = &w->aw[i];
    snprintf(label, sizeof(label), "await %.140s", a->what ? a->what : "?");
    chrome_event(out, &first, label, "await", "X", a->task, a->t);
    jbuf_puts(out, ",\"dur\":");
    micros(out, a->d);
    jbuf_puts(out, ",\"args\":{\"file\":");
    jbuf_str(out, a->file);
    jbuf_puts(out, ",\"line\":");
    if(a->line >= 0)
      jbuf_i64(out, a->line);
    else
      jbuf_puts(out, "null");
    jbuf_puts(out, ",\"func\":");
    jbuf_str(out, a->func);
    jbuf_puts(out, "}}");
  }
  for(size_t i = 0; i < w->nb; i++) {
    const store_block *b = &w->bl[i];
    snprintf(label, sizeof(label), "blocked: %.140s", b->src ? b->src : b->func ? b->func : "?");
    chrome_event(out, &first, label, "block", "X", 0, b->t);
    jbuf_puts(out, ",\"dur\":");
    micros(out, b->d);
    jbuf_puts(out, ",\"args\":{\"task\":");
    jbuf_i64(out, b->task);
    jbuf_puts(out, ",\"stack\":");
    jbuf_puts(out, b->stack ? b->stack : "[]");
    jbuf_puts(out, "}}");
  }
  for(size_t i = 0; i < w->nl; i++) {
    chrome_event(out, &first, "loop lag", "lag", "C", 0, w->lag[i].t);
    jbuf_puts(out, ",\"args\":{\"lag_ms\":");
    jbuf_f64(out, (double)w->lag[i].d / 1e6, 6);
    jbuf_puts(out, "}}");
  }
  jbuf_puts(out, "\n]}");
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
