/* test_otlp_trace.c — Check suite for server/otlp_trace.c on rows built by hand: which span hangs
 * under which (missing parents, parent loops, unknown tasks, blocks outside a task), distinct and
 * stable ids, lag events capped, the clock (started_unix_ns or received_unix_ns), and splitting:
 * every body under the size unless it holds a single span, the same spans as unsplit. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_trace.h"
#include "check_run.h"

#define NLAG 1500

static store_task tasks[5];
static store_await aw[3];
static store_block bl[3];
static store_step lag[NLAG];
static session_rows rows;

static void setup(void)
{
  memset(&rows, 0, sizeof(rows));
  rows.x.id = "s1";
  rows.x.name = "GET /x";
  rows.x.service = "svc";
  rows.x.started = "1000000000000000000";
  rows.x.pid = -1;
  rows.x.received_ns = -1;
  rows.x.ended = 1;
  rows.x.end_t = 1000000;
  rows.x.max_t = 1000000;
  /* 1 root, 2 under 1, 3 under a task that never arrived, 4 and 5 parents of each other */
  const int64_t parents[5] = {0, 1, 99, 5, 4};
  for(int i = 0; i < 5; i++)
    tasks[i] = (store_task){i + 1, parents[i], i * 10, -1, i == 1 ? 500 : -1, 0, 0, -1,
                            "Task", "app.f", i == 1 ? "error" : NULL, i == 1 ? "KeyError: 'k'" : NULL};
  aw[0] = (store_await){2, 100, 50, 7, "sleep", "a.py", "f"};
  aw[1] = (store_await){2, 20, 5, -1, NULL, NULL, NULL};
  aw[2] = (store_await){77, 30, 5, 3, "q.get", "b.py", "g"}; /* a task never announced */
  const char *stack = "[{\"file\":\"m.py\",\"line\":3,\"func\":\"main\",\"src\":\"run()\"},"
                      "{\"file\":\"m.py\",\"line\":9,\"func\":\"run\",\"src\":\"time.sleep(1)\"}]";
  bl[0] = (store_block){1, 40, 10, 9, "m.py", "run", "time.sleep(1)", stack, 0, NULL, -1, 5};
  bl[1] = (store_block){1, 40, 10, 9, "m.py", "run", "time.sleep(1)", stack, 0, NULL, -1, 5}; /* sent twice */
  bl[2] = (store_block){0, 60, 10, -1, NULL, NULL, NULL, "not json", 0, NULL, -1, -1};
  for(int i = 0; i < NLAG; i++)
    lag[i] = (store_step){0, i * 100, i % 7 == 0 ? 5000000 : 1000};
  rows.tasks = tasks;
  rows.nt = 5;
  rows.aw = aw;
  rows.na = 3;
  rows.bl = bl;
  rows.nb = 3;
  rows.lag = lag;
  rows.nl = NLAG;
}

typedef struct bodies { char *text[256]; size_t len[256]; int64_t spans[256]; int n; int fail_at; } bodies;

static int keep(void *ctx, const char *body, size_t len, int64_t spans)
{
  bodies *b = ctx;
  if(b->n == b->fail_at)
    return 42;
  ck_assert_int_lt(b->n, 256);
  ck_assert_uint_eq(strlen(body), len);
  b->text[b->n] = strdup(body);
  b->len[b->n] = len;
  b->spans[b->n++] = spans;
  return 0;
}

static void bodies_free(bodies *b)
{
  for(int i = 0; i < b->n; i++)
    free(b->text[i]);
}

static const cJSON *spans_of(const cJSON *req)
{
  const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "resourceSpans"), 0);
  return cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0), "spans");
}

static const char *str(const cJSON *o, const char *k)
{
  return cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
}

/* The value of attribute `key` of span s as text (stringValue or intValue), or NULL. */
/* The value object of span s's attribute key, NULL when it has none. */
static const cJSON *attr_value(const cJSON *s, const char *key)
{
  const cJSON *a;
  cJSON_ArrayForEach(a, cJSON_GetObjectItem(s, "attributes"))
    if(!strcmp(str(a, "key"), key))
      return cJSON_GetObjectItem(a, "value");
  return NULL;
}

static const char *attr(const cJSON *s, const char *key)
{
  const cJSON *v = attr_value(s, key);
  if(!v)
    return NULL;
  return str(v, "stringValue") ? str(v, "stringValue") : str(v, "intValue");
}

/* All spans of all bodies in one array (a copy). */
static cJSON *all_spans(const bodies *b)
{
  cJSON *out = cJSON_CreateArray();
  for(int i = 0; i < b->n; i++) {
    cJSON *req = cJSON_Parse(b->text[i]);
    ck_assert_ptr_nonnull(req);
    const cJSON *s;
    int n = 0;
    cJSON_ArrayForEach(s, spans_of(req)) {
      cJSON_AddItemToArray(out, cJSON_Duplicate(s, 1));
      n++;
    }
    ck_assert_int_eq(n, b->spans[i]);
    cJSON_Delete(req);
  }
  return out;
}

static const cJSON *find(const cJSON *spans, const char *key, const char *value)
{
  const cJSON *s;
  cJSON_ArrayForEach(s, spans) {
    const char *v = attr(s, key);
    if(v && !strcmp(v, value))
      return s;
  }
  return NULL;
}

static const cJSON *named(const cJSON *spans, const char *name)
{
  const cJSON *s;
  cJSON_ArrayForEach(s, spans) if(!strcmp(str(s, "name"), name)) return s;
  return NULL;
}

START_TEST(tree_ids_and_times)
{
  otlp_trace_options o = {"http://h:1/", 0, (size_t)64 << 20};
  bodies b = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &o, keep, &b), 0);
  ck_assert_int_eq(b.n, 1);
  ck_assert_int_eq(otlp_trace_spans(&rows), 1 + 5 + 3 + 3);
  cJSON *spans = all_spans(&b);
  ck_assert_int_eq(cJSON_GetArraySize(spans), 12);
  /* every span id distinct, every parent one of them, one root: the session span */
  const cJSON *s, *t;
  int roots = 0;
  cJSON_ArrayForEach(s, spans) {
    int same = 0, parent_found = 0;
    const char *p = str(s, "parentSpanId");
    cJSON_ArrayForEach(t, spans) {
      same += !strcmp(str(s, "spanId"), str(t, "spanId"));
      parent_found += p && !strcmp(p, str(t, "spanId"));
    }
    ck_assert_int_eq(same, 1);
    ck_assert_int_eq(p ? parent_found : 0, p ? 1 : 0);
    roots += !p;
    ck_assert_int_eq(strlen(str(s, "traceId")), 32);
    ck_assert_int_eq(strlen(str(s, "spanId")), 16);
  }
  ck_assert_int_eq(roots, 1);
  const cJSON *session = named(spans, "GET /x");
  const char *sid = str(session, "spanId");
  ck_assert_str_eq(attr(session, "loopscope.session.url"), "http://h:1/sessions/s1");
  const cJSON *t1 = find(spans, "loopscope.task.id", "1"), *t2 = find(spans, "loopscope.task.id", "2");
  ck_assert_str_eq(str(t1, "parentSpanId"), sid);
  ck_assert_str_eq(str(t2, "parentSpanId"), str(t1, "spanId"));
  ck_assert_str_eq(str(find(spans, "loopscope.task.id", "3"), "parentSpanId"), sid); /* parent 99 unknown */
  ck_assert_str_eq(str(find(spans, "loopscope.task.id", "4"), "parentSpanId"), sid); /* a parent loop */
  ck_assert_str_eq(str(find(spans, "loopscope.task.id", "5"), "parentSpanId"), sid);
  ck_assert_str_eq(str(named(spans, "sleep"), "parentSpanId"), str(t2, "spanId"));
  ck_assert_str_eq(str(named(spans, "await"), "parentSpanId"), str(t2, "spanId"));
  ck_assert_str_eq(str(named(spans, "q.get"), "parentSpanId"), sid); /* task 77 has no span */
  ck_assert_str_eq(attr(named(spans, "sleep"), "code.lineno"), "7");
  ck_assert_ptr_null(attr(named(spans, "await"), "code.lineno"));
  /* times: started + t; task 2 ended at 500, task 1 open: it ends with the session */
  ck_assert_str_eq(str(named(spans, "sleep"), "startTimeUnixNano"), "1000000000000000100");
  ck_assert_str_eq(str(named(spans, "sleep"), "endTimeUnixNano"), "1000000000000000150");
  ck_assert_str_eq(str(t2, "endTimeUnixNano"), "1000000000000000500");
  ck_assert_str_eq(str(t1, "endTimeUnixNano"), "1000000000001000000");
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(t2, "status"), "code")->valueint, 2);
  /* blocks: the two at the same (task, t) have distinct ids; outside a task: under the session */
  int nblocks = 0;
  cJSON_ArrayForEach(s, spans) {
    if(strcmp(str(s, "name"), "event loop blocked"))
      continue;
    nblocks++;
    const char *task = attr(s, "loopscope.task.id");
    ck_assert_str_eq(str(s, "parentSpanId"), !strcmp(task, "0") ? sid : str(t1, "spanId"));
    const cJSON *at = attr_value(s, "loopscope.block.stack_at_ms"); /* when the stack was taken */
    if(!strcmp(task, "1")) {
      ck_assert_str_eq(attr(s, "code.stacktrace"), "Traceback (most recent call last):\n"
                       "  File \"m.py\", line 3, in main\n    run()\n  File \"m.py\", line 9, in run\n    time.sleep(1)\n");
      ck_assert(at && cJSON_IsNumber(cJSON_GetObjectItem(at, "doubleValue")));
      ck_assert_double_eq_tol(cJSON_GetObjectItem(at, "doubleValue")->valuedouble, 5e-6, 1e-12);
    }
    else {
      ck_assert_str_eq(attr(s, "code.stacktrace"), "not json");
      ck_assert_ptr_null(at); /* unknown: no attribute */
    }
  }
  ck_assert_int_eq(nblocks, 3);
  /* lag: the longest OTLP_TRACE_MAX_LAG_EVENTS samples as events, in time order, the rest counted */
  const cJSON *ev = cJSON_GetObjectItem(session, "events");
  ck_assert_int_eq(cJSON_GetArraySize(ev), OTLP_TRACE_MAX_LAG_EVENTS);
  ck_assert_int_eq(cJSON_GetObjectItem(session, "droppedEventsCount")->valueint, NLAG - OTLP_TRACE_MAX_LAG_EVENTS);
  ck_assert_str_eq(str(cJSON_GetArrayItem(ev, 0), "timeUnixNano"), "1000000000000000000");
  ck_assert_str_eq(attr(session, "loopscope.lag.samples"), "1500");
  /* the same rows give the same bytes */
  bodies again = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &o, keep, &again), 0);
  ck_assert_str_eq(again.text[0], b.text[0]);
  bodies_free(&again);
  cJSON_Delete(spans);
  bodies_free(&b);
}
END_TEST

START_TEST(split_under_the_size)
{
  otlp_trace_options whole = {NULL, 0, (size_t)64 << 20};
  bodies one = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &whole, keep, &one), 0);
  for(size_t max = 600; max <= 4096; max *= 2) {
    otlp_trace_options o = {NULL, max, (size_t)64 << 20};
    bodies b = {.fail_at = -1};
    ck_assert_int_eq(otlp_trace_build(&rows, &o, keep, &b), 0);
    ck_assert_int_gt(b.n, 1);
    int64_t total = 0;
    for(int i = 0; i < b.n; i++) {
      ck_assert(b.len[i] <= max || b.spans[i] == 1); /* the session span with its lag is larger alone */
      total += b.spans[i];
      cJSON *req = cJSON_Parse(b.text[i]);
      ck_assert_ptr_nonnull(req); /* every body a whole request, resource included */
      const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "resourceSpans"), 0);
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"), "attributes"));
      cJSON_Delete(req);
    }
    ck_assert_int_eq(total, 12);
    cJSON *a = all_spans(&one), *c = all_spans(&b);
    ck_assert(cJSON_Compare(a, c, 1));
    cJSON_Delete(a);
    cJSON_Delete(c);
    bodies_free(&b);
  }
  bodies_free(&one);
}
END_TEST

START_TEST(clock_errors_and_empty)
{
  /* no started_unix_ns: the server's received time */
  rows.x.started = NULL;
  rows.x.received_ns = 5000000000;
  otlp_trace_options o = {NULL, 0, (size_t)64 << 20};
  bodies b = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &o, keep, &b), 0);
  cJSON *spans = all_spans(&b);
  const cJSON *session = named(spans, "GET /x");
  ck_assert_str_eq(str(session, "startTimeUnixNano"), "5000000000");
  ck_assert_str_eq(attr(session, "loopscope.session.start_source"), "server");
  ck_assert_ptr_null(attr(session, "loopscope.session.url"));
  ck_assert_ptr_null(attr_value(session, "loopscope.session.fraction")); /* every request recorded */
  cJSON_Delete(spans);
  bodies_free(&b);
  /* one request of a share recorded (meta.fraction): the session span says which share */
  rows.x.fraction = 1.0 / 3;
  bodies sb = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &o, keep, &sb), 0);
  spans = all_spans(&sb);
  const cJSON *share = cJSON_GetObjectItem(attr_value(named(spans, "GET /x"), "loopscope.session.fraction"), "doubleValue");
  ck_assert(cJSON_IsNumber(share) && share->valuedouble == 1.0 / 3);
  cJSON_Delete(spans);
  bodies_free(&sb);
  rows.x.fraction = 0;
  /* emit's refusal stops the build and is returned; a ceiling too low for a span: LS_ETOOBIG */
  otlp_trace_options split = {NULL, 4096, (size_t)64 << 20};
  bodies f = {.fail_at = 1};
  ck_assert_int_eq(otlp_trace_build(&rows, &split, keep, &f), 42);
  ck_assert_int_eq(f.n, 1);
  bodies_free(&f);
  otlp_trace_options tiny = {NULL, 0, 200};
  bodies t = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&rows, &tiny, keep, &t), LS_ETOOBIG);
  ck_assert_int_eq(t.n, 0);
  /* a session with nothing but its meta: the session span alone */
  session_rows empty;
  memset(&empty, 0, sizeof(empty));
  empty.x.id = "e";
  empty.x.pid = -1;
  empty.x.received_ns = 7;
  bodies e = {.fail_at = -1};
  ck_assert_int_eq(otlp_trace_build(&empty, &o, keep, &e), 0);
  ck_assert_int_eq(e.n, 1);
  ck_assert_int_eq(e.spans[0], 1);
  bodies_free(&e);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("otlp_trace");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, tree_ids_and_times);
  tcase_add_test(tc, split_under_the_size);
  tcase_add_test(tc, clock_errors_and_empty);
  suite_add_tcase(s, tc);
  return check_run(s);
}
