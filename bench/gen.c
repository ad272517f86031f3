/* gen.c — the benchmark workload generator and its JSON encoder (see gen.h). Task lifecycles
 * of one task event, five steps, four awaits at a small set of source lines and a done; a lag
 * sample every dozen events and a block with a three-frame stack now and then. */
#include "gen.h"

#include <stdio.h>
#include <string.h>

static uint64_t next_rand(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 2685821657736338717ull;
}

static int64_t between(uint64_t *s, int64_t lo, int64_t hi) {
  return lo + (int64_t)(next_rand(s) % (uint64_t)(hi - lo + 1));
}

typedef struct site {
  const char *file, *func, *what;
  int line;
} site;

static const site SITES[] = {
    {"app/db.py", "fetch_user", "AsyncSession.execute", 23},
    {"app/db.py", "fetch_orders", "AsyncSession.execute", 41},
    {"app/db.py", "begin", "AsyncConnection.begin", 12},
    {"app/cache.py", "get", "Redis.get", 18},
    {"app/cache.py", "set", "Redis.set", 27},
    {"app/http.py", "call_service", "AsyncClient.get", 55},
    {"app/http.py", "call_service", "AsyncClient.post", 61},
    {"app/views.py", "user_page", "gather", 44},
    {"app/views.py", "order_page", "TaskGroup.__aexit__", 88},
    {"app/queue.py", "consume", "Queue.get", 9},
    {"app/queue.py", "produce", "Queue.put", 15},
    {"app/auth.py", "check_token", "sleep", 31},
    {"app/render.py", "render", "Template.render_async", 72},
    {"asyncpg/pool.py", "acquire", "Future", 401},
    {"uvicorn/protocols/http/h11_impl.py", "receive", "Event.wait", 534},
    {"starlette/middleware/base.py", "call_next", "anyio.create_task_group", 72},
};
#define NSITES (sizeof SITES / sizeof SITES[0])

static const char *COROS[] = {"app.views.user_page", "app.db.fetch_user", "app.db.fetch_orders",
                              "app.cache.get", "app.http.call_service", "app.queue.consume",
                              "app.render.render", "starlette.middleware.base.call_next"};
#define NCOROS (sizeof COROS / sizeof COROS[0])

static const char *STACK_JSON =
    "[{\"file\":\"app/main.py\",\"line\":12,\"func\":\"handle\",\"src\":\"return await view(request)\"},"
    "{\"file\":\"app/views.py\",\"line\":45,\"func\":\"user_page\",\"src\":\"report = build_report(user)\"},"
    "{\"file\":\"app/report.py\",\"line\":88,\"func\":\"build_report\",\"src\":\"time.sleep(0.15)\"}]";

void gen_session_init(gen_session *s, const char *id, uint64_t seed) {
  memset(s, 0, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", id);
  s->rng = seed * 0x9E3779B97F4A7C15ull + 1;
  s->clock = 0;
  s->next_id = 1;
  s->root_id = 0;
}

static gen_event *push(gen_batch *b, int kind) {
  gen_event *e = &b->ev[b->n++];
  memset(e, 0, sizeof *e);
  e->kind = kind;
  e->line = -1;
  return e;
}

/* One task's whole life: 11 events. */
static void task_lifecycle(gen_session *s, gen_batch *b) {
  uint64_t *r = &s->rng;
  int64_t id = s->next_id++;
  int64_t t = s->clock;
  gen_event *e = push(b, GEN_TASK);
  e->id = id;
  /* the session's first task is the root; most others are its children, some nest deeper */
  if (s->root_id == 0) s->root_id = id;
  e->parent = id == s->root_id ? 0 : (between(r, 0, 3) == 0 && id > 2 ? id - 1 : s->root_id);
  e->t = t;
  e->coro = COROS[next_rand(r) % NCOROS];
  snprintf(e->name, sizeof e->name, "Task-%lld", (long long)id);
  t += between(r, 1000, 20000);
  for (int k = 0; k < 5; k++) {
    e = push(b, GEN_STEP);
    e->id = id;
    e->t = t;
    e->d = between(r, 5000, 200000);
    t += e->d;
    if (k == 4) break;
    const site *st = &SITES[next_rand(r) % NSITES];
    e = push(b, GEN_AWAIT);
    e->id = id;
    e->t = t;
    /* mostly short waits, one in eight over 10 ms */
    e->d = between(r, 0, 7) == 0 ? between(r, 10000000, 60000000) : between(r, 50000, 5000000);
    e->what = st->what;
    e->file = st->file;
    e->func = st->func;
    e->line = st->line;
    t += e->d;
  }
  e = push(b, GEN_DONE);
  e->id = id;
  e->t = t;
  int64_t p = between(r, 0, 99);
  e->state = p < 90 ? "ok" : p < 97 ? "cancelled" : "error";
  if (p >= 97) e->exc = "ValueError: user 42 not found";
  s->clock += between(r, 20000, 120000); /* tasks overlap: the next starts before this ends */
}

void gen_next_batch(gen_session *s, gen_batch *b, size_t n_events, const char *batch_prefix) {
  b->n = 0;
  b->session = s;
  b->with_meta = s->batches == 0;
  snprintf(b->batch_id, sizeof b->batch_id, "%s-%06lld", batch_prefix, (long long)s->batches);
  s->batches++;
  uint64_t *r = &s->rng;
  size_t since_lag = 0;
  while (b->n < n_events) {
    size_t left = n_events - b->n;
    if (left >= 11 && since_lag < 12) {
      size_t before = b->n;
      task_lifecycle(s, b);
      since_lag += b->n - before;
      if (between(r, 0, 299) == 0 && b->n < n_events) {
        gen_event *e = push(b, GEN_BLOCK);
        e->id = s->root_id;
        e->t = s->clock;
        e->d = between(r, 100000000, 300000000);
        e->file = "app/report.py";
        e->func = "build_report";
        e->line = 88;
        e->what = "time.sleep(0.15)"; /* the innermost frame's src */
        e->stack_json = STACK_JSON;
      }
    } else {
      gen_event *e = push(b, GEN_LAG);
      e->t = s->clock;
      e->d = between(r, 100000, 3000000);
      s->clock += 10000000 / 50; /* sampled often relative to tasks */
      since_lag = 0;
    }
  }
}

void gen_count_kinds(const gen_batch *b, size_t counts[GEN_NKINDS]) {
  memset(counts, 0, GEN_NKINDS * sizeof counts[0]);
  for (size_t i = 0; i < b->n; i++) counts[b->ev[i].kind]++;
}

/* ---- JSON encoding: a bounded writer ------------------------------------------------------ */

typedef struct out {
  char *p, *end;
  int full;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->full || (size_t)(o->end - o->p) < n) {
    o->full = 1;
    return;
  }
  memcpy(o->p, s, n);
  o->p += n;
}
#define PUTLIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_i64(out *o, int64_t v) {
  char buf[24], *q = buf + sizeof buf;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--q = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--q = '-';
  put(o, q, (size_t)(buf + sizeof buf - q));
}

/* A JSON string; escapes quotes, backslashes and control characters. */
static void put_str(out *o, const char *s) {
  put(o, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c != '"' && c != '\\' && c >= 0x20) continue;
    put(o, run, (size_t)(s - run));
    char esc[8];
    int n = c == '"' ? snprintf(esc, sizeof esc, "\\\"") : c == '\\' ? snprintf(esc, sizeof esc, "\\\\")
                                                                    : snprintf(esc, sizeof esc, "\\u%04x", c);
    put(o, esc, (size_t)n);
    run = s + 1;
  }
  put(o, run, (size_t)(s - run));
  put(o, "\"", 1);
}

size_t gen_encode_json(const gen_batch *b, char *buf, size_t cap) {
  out o = {buf, buf + cap, 0};
  PUTLIT(&o, "{\"v\":1,\"batch\":");
  put_str(&o, b->batch_id);
  PUTLIT(&o, ",\"session\":");
  put_str(&o, b->session->id);
  if (b->with_meta) {
    PUTLIT(&o, ",\"meta\":{\"name\":\"GET /bench\",\"service\":\"bench\",\"pid\":4711,"
               "\"host\":\"bench1\",\"python\":\"3.11.7\",\"started_unix_ns\":\"1764089000123456789\"}");
  }
  PUTLIT(&o, ",\"events\":[");
  for (size_t i = 0; i < b->n; i++) {
    const gen_event *e = &b->ev[i];
    if (i) PUTLIT(&o, ",");
    switch (e->kind) {
    case GEN_TASK:
      PUTLIT(&o, "{\"k\":\"task\",\"id\":");
      put_i64(&o, e->id);
      PUTLIT(&o, ",\"parent\":");
      put_i64(&o, e->parent);
      PUTLIT(&o, ",\"name\":");
      put_str(&o, e->name);
      PUTLIT(&o, ",\"coro\":");
      put_str(&o, e->coro);
      PUTLIT(&o, ",\"t\":");
      put_i64(&o, e->t);
      break;
    case GEN_STEP:
      PUTLIT(&o, "{\"k\":\"step\",\"id\":");
      put_i64(&o, e->id);
      PUTLIT(&o, ",\"t\":");
      put_i64(&o, e->t);
      PUTLIT(&o, ",\"d\":");
      put_i64(&o, e->d);
      break;
    case GEN_AWAIT:
      PUTLIT(&o, "{\"k\":\"await\",\"id\":");
      put_i64(&o, e->id);
      PUTLIT(&o, ",\"t\":");
      put_i64(&o, e->t);
      PUTLIT(&o, ",\"d\":");
      put_i64(&o, e->d);
      PUTLIT(&o, ",\"what\":");
      put_str(&o, e->what);
      PUTLIT(&o, ",\"file\":");
      put_str(&o, e->file);
      PUTLIT(&o, ",\"line\":");
      put_i64(&o, e->line);
      PUTLIT(&o, ",\"func\":");
      put_str(&o, e->func);
      break;
    case GEN_BLOCK:
      PUTLIT(&o, "{\"k\":\"block\",\"id\":");
      put_i64(&o, e->id);
      PUTLIT(&o, ",\"t\":");
      put_i64(&o, e->t);
      PUTLIT(&o, ",\"d\":");
      put_i64(&o, e->d);
      PUTLIT(&o, ",\"stack\":");
      put(&o, e->stack_json, strlen(e->stack_json));
      break;
    case GEN_LAG:
      PUTLIT(&o, "{\"k\":\"lag\",\"t\":");
      put_i64(&o, e->t);
      PUTLIT(&o, ",\"d\":");
      put_i64(&o, e->d);
      break;
    case GEN_DONE:
      PUTLIT(&o, "{\"k\":\"done\",\"id\":");
      put_i64(&o, e->id);
      PUTLIT(&o, ",\"t\":");
      put_i64(&o, e->t);
      PUTLIT(&o, ",\"state\":");
      put_str(&o, e->state);
      if (e->exc) {
        PUTLIT(&o, ",\"exc\":");
        put_str(&o, e->exc);
      }
      break;
    }
    PUTLIT(&o, "}");
  }
  PUTLIT(&o, "]}");
  return o.full ? 0 : (size_t)(o.p - buf);
}
