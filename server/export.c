/* export.c — session export (export.h): reads every row of a session through the store and
 * writes it back as one ingest-v1 batch with batch id "export-<session>". */
#include "export.h"

#include <stdlib.h>

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

int export_json(store *s, const char *id, jbuf *out)
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  store_task *tasks = NULL;
  store_step *steps = NULL, *lag = NULL;
  store_await *aw = NULL;
  store_block *bl = NULL;
  size_t nt = 0, ns = 0, nl = 0, na = 0, nb = 0;
  int rc = store_find_session(r, id, &ar, &x);
  if(!rc)
    rc = store_load_tasks(r, x.sid, &ar, &tasks, &nt);
  if(!rc)
    rc = store_load_steps(r, x.sid, &steps, &ns);
  if(!rc)
    rc = store_load_awaits(r, x.sid, 0, &ar, &aw, &na);
  if(!rc)
    rc = store_load_blocks(r, x.sid, &ar, &bl, &nb);
  if(!rc)
    rc = store_load_lag(r, x.sid, &lag, &nl);
  if(!rc) {
    jbuf_puts(out, "{\"v\":1,\"batch\":");
    jbuf_printf(out, "\"export-%s\"", x.id); /* ids are [A-Za-z0-9._:@+~=-]: nothing to escape */
    jbuf_key(out, "session", 1);
    jbuf_str(out, x.id);
    if(x.has_meta) {
      jbuf_key(out, "meta", 1);
      jbuf_putc(out, '{');
      int comma = 0;
      opt_str_c(out, "name", x.name, &comma);
      opt_str_c(out, "service", x.service, &comma);
      opt_i64_c(out, "pid", x.pid, &comma);
      opt_str_c(out, "host", x.host, &comma);
      opt_str_c(out, "python", x.python, &comma);
      opt_str_c(out, "started_unix_ns", x.started, &comma);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, ",\"events\":[");
    int first = 1;
    for(size_t i = 0; i < nt; i++) {
      next_event(out, &first);
      jbuf_puts(out, "\"task\",\"id\":");
      jbuf_i64(out, tasks[i].id);
      jbuf_puts(out, ",\"parent\":");
      jbuf_i64(out, tasks[i].parent);
      opt_str(out, "name", tasks[i].name);
      opt_str(out, "coro", tasks[i].coro);
      jbuf_puts(out, ",\"t\":");
      jbuf_i64(out, tasks[i].created);
      jbuf_putc(out, '}');
    }
    for(size_t i = 0; i < ns; i++) {
      next_event(out, &first);
      jbuf_printf(out, "\"step\",\"id\":%lld,\"t\":%lld,\"d\":%lld}", (long long)steps[i].task,
                  (long long)steps[i].t, (long long)steps[i].d);
    }
    for(size_t i = 0; i < na; i++) {
      next_event(out, &first);
      jbuf_printf(out, "\"await\",\"id\":%lld,\"t\":%lld,\"d\":%lld", (long long)aw[i].task,
                  (long long)aw[i].t, (long long)aw[i].d);
      opt_str(out, "what", aw[i].what);
      opt_str(out, "file", aw[i].file);
      opt_i64(out, "line", aw[i].line);
      opt_str(out, "func", aw[i].func);
      jbuf_putc(out, '}');
    }
    for(size_t i = 0; i < nb; i++) {
      next_event(out, &first);
      jbuf_printf(out, "\"block\",\"id\":%lld,\"t\":%lld,\"d\":%lld,\"stack\":", (long long)bl[i].task,
                  (long long)bl[i].t, (long long)bl[i].d);
      jbuf_puts(out, bl[i].stack ? bl[i].stack : "[]");
      jbuf_putc(out, '}');
    }
    for(size_t i = 0; i < nl; i++) {
      next_event(out, &first);
      jbuf_printf(out, "\"lag\",\"t\":%lld,\"d\":%lld}", (long long)lag[i].t, (long long)lag[i].d);
    }
    for(size_t i = 0; i < nt; i++) {
      if(tasks[i].ended < 0)
        continue;
      next_event(out, &first);
      jbuf_printf(out, "\"done\",\"id\":%lld,\"t\":%lld", (long long)tasks[i].id, (long long)tasks[i].ended);
      opt_str(out, "state", tasks[i].state);
      opt_str(out, "exc", tasks[i].exc);
      jbuf_putc(out, '}');
    }
    if(x.dropped > 0) {
      next_event(out, &first);
      jbuf_printf(out, "\"drop\",\"n\":%lld}", (long long)x.dropped);
    }
    if(x.ended) {
      next_event(out, &first);
      jbuf_printf(out, "\"end\",\"t\":%lld}", (long long)x.end_t);
    }
    jbuf_puts(out, "]}");
  }
  free(tasks);
  free(steps);
  free(lag);
  free(aw);
  free(bl);
  arena_free(&ar);
  store_reader_release(s, r);
  return rc ? rc : jbuf_status(out);
}
