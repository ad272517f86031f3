/* test_ingest.c — Check suite for server/ingest.c: every field of ingest contract v1 accepted
 * and refused with the precise detail naming it, limits (events, strings, frames, nesting),
 * unknown kinds counted, UTF-8 and id rules, and the rows a good batch turns into. */
#include <check.h>
#include <pthread.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ingest.h"
#include "check_run.h"

static ingest_limits lim;

static void setup(void)
{
  ingest_default_limits(&lim);
}

/* Parses `events` (a JSON array body) wrapped in a valid batch. */
static int parse_events(const char *events, ingest_batch **b, char *detail, size_t dlen)
{
  char body[8192];
  snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"events\":%s}", events);
  return ingest_parse(body, strlen(body), &lim, b, detail, dlen);
}

/* Expects the events to be refused with exactly `want` as detail. */
static void refused(const char *events, const char *want)
{
  ingest_batch *b = (ingest_batch *)1;
  char detail[256];
  int rc = parse_events(events, &b, detail, sizeof(detail));
  ck_assert_msg(rc == LS_EINVAL, "accepted: %s", events);
  ck_assert_ptr_null(b);
  ck_assert_str_eq(detail, want);
}

static void refused_body(const char *body, const char *want)
{
  ingest_batch *b = (ingest_batch *)1;
  char detail[256];
  int rc = ingest_parse(body, strlen(body), &lim, &b, detail, sizeof(detail));
  ck_assert_msg(rc == LS_EINVAL, "accepted: %s", body);
  ck_assert_ptr_null(b);
  ck_assert_str_eq(detail, want);
}

static ingest_batch *accepted(const char *events)
{
  ingest_batch *b = NULL;
  char detail[256];
  int rc = parse_events(events, &b, detail, sizeof(detail));
  ck_assert_msg(rc == 0, "refused (%s): %s", detail, events);
  ck_assert_ptr_nonnull(b);
  return b;
}

START_TEST(design_example)
{
  const char *body =
    "{\"v\":1,\"batch\":\"b-4711-000042\",\"session\":\"s-9f1c2e\","
    "\"meta\":{\"name\":\"GET /users/42\",\"service\":\"shop\",\"pid\":4711,\"host\":\"dev1\","
    "\"python\":\"3.11.7\",\"started_unix_ns\":\"1764089000123456789\"},\"events\":["
    "{\"k\":\"task\",\"id\":1,\"parent\":0,\"name\":\"Task-1\",\"coro\":\"app.views.user_page\",\"t\":0},"
    "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"Task-2\",\"coro\":\"app.db.fetch_user\",\"t\":120000},"
    "{\"k\":\"step\",\"id\":2,\"t\":130000,\"d\":52000},"
    "{\"k\":\"await\",\"id\":2,\"t\":182000,\"d\":45000000,\"what\":\"AsyncSession.execute\","
    "\"file\":\"app/db.py\",\"line\":23,\"func\":\"fetch_user\"},"
    "{\"k\":\"block\",\"id\":1,\"t\":50000000,\"d\":150000000,"
    "\"stack\":[{\"file\":\"app/a.py\",\"line\":1,\"func\":\"outer\"},"
    "{\"file\":\"app/views.py\",\"line\":45,\"func\":\"user_page\",\"src\":\"time.sleep(0.15)\"}]},"
    "{\"k\":\"lag\",\"t\":60000000,\"d\":2300000},"
    "{\"k\":\"done\",\"id\":2,\"t\":95000000,\"state\":\"ok\"},"
    "{\"k\":\"drop\",\"n\":12},{\"k\":\"end\",\"t\":250000000}]}";
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(ingest_parse(body, strlen(body), &lim, &b, detail, sizeof(detail)), 0);
  ck_assert_str_eq(b->batch, "b-4711-000042");
  ck_assert_str_eq(b->session, "s-9f1c2e");
  ck_assert_int_eq(b->meta.present, 1);
  ck_assert_str_eq(b->meta.name, "GET /users/42");
  ck_assert_str_eq(b->meta.service, "shop");
  ck_assert_str_eq(b->meta.host, "dev1");
  ck_assert_str_eq(b->meta.python, "3.11.7");
  ck_assert_int_eq(b->meta.pid, 4711);
  ck_assert_str_eq(b->meta.started, "1764089000123456789");
  ck_assert(b->meta.started_ns == 1764089000123456789LL);
  ck_assert_uint_eq(b->events, 9);
  ck_assert_uint_eq(b->ntasks, 2);
  ck_assert_int_eq(b->tasks[1].id, 2);
  ck_assert_int_eq(b->tasks[1].parent, 1);
  ck_assert_str_eq(b->tasks[1].coro, "app.db.fetch_user");
  ck_assert_uint_eq(b->nsteps, 1);
  ck_assert_int_eq(b->steps[0].d, 52000);
  ck_assert_uint_eq(b->nawaits, 1);
  ck_assert_int_eq(b->awaits[0].line, 23);
  ck_assert_str_eq(b->awaits[0].what, "AsyncSession.execute");
  ck_assert_uint_eq(b->nblocks, 1);
  /* the innermost frame is the last one */
  ck_assert_str_eq(b->blocks[0].file, "app/views.py");
  ck_assert_int_eq(b->blocks[0].line, 45);
  ck_assert_str_eq(b->blocks[0].src, "time.sleep(0.15)");
  char stack[512];
  snprintf(stack, sizeof(stack), "%.*s", (int)b->blocks[0].stack_len, b->stacks + b->blocks[0].stack_off);
  ck_assert_str_eq(stack, "[{\"file\":\"app/a.py\",\"line\":1,\"func\":\"outer\",\"src\":null},"
                          "{\"file\":\"app/views.py\",\"line\":45,\"func\":\"user_page\",\"src\":\"time.sleep(0.15)\"}]");
  ck_assert_uint_eq(b->nlags, 1);
  ck_assert_uint_eq(b->ndones, 1);
  ck_assert_str_eq(b->dones[0].state, "ok");
  ck_assert_int_eq(b->dropped, 12);
  ck_assert_int_eq(b->has_end, 1);
  ck_assert_int_eq(b->end_t, 250000000);
  ck_assert_int_eq(b->max_t, 250000000);
  ck_assert_int_eq(b->max_d[INGEST_BLOCK], 150000000);
  ck_assert_int_eq(b->max_d[INGEST_AWAIT], 45000000);
  ck_assert_int_eq(b->unknown, 0);
  ingest_free(b);
}
END_TEST

START_TEST(top_level_fields)
{
  refused_body("[]", "body: expected a JSON object");
  refused_body("{\"v\":1,", "body: not valid JSON (near byte 6)");
  refused_body("", "body: not valid JSON (near byte 0)");
  refused_body("{\"batch\":\"b\",\"session\":\"s\",\"events\":[]}", "v: missing");
  refused_body("{\"v\":2,\"batch\":\"b\",\"session\":\"s\",\"events\":[]}", "v: expected 1");
  refused_body("{\"v\":\"1\",\"batch\":\"b\",\"session\":\"s\",\"events\":[]}", "v: expected 1");
  refused_body("{\"v\":1,\"session\":\"s\",\"events\":[]}", "batch: missing");
  refused_body("{\"v\":1,\"batch\":7,\"session\":\"s\",\"events\":[]}",
               "batch: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  refused_body("{\"v\":1,\"batch\":\"\",\"session\":\"s\",\"events\":[]}",
               "batch: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  refused_body("{\"v\":1,\"batch\":\"b\",\"events\":[]}", "session: missing");
  refused_body("{\"v\":1,\"batch\":\"b\",\"session\":\"a/b\",\"events\":[]}",
               "session: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  refused_body("{\"v\":1,\"batch\":\"b\",\"session\":\"s\"}", "events: missing");
  refused_body("{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":{}}", "events: expected an array");
  refused_body("{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"meta\":3,\"events\":[]}", "meta: expected an object");
}
END_TEST

START_TEST(meta_fields)
{
  const char *head = "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[],\"meta\":";
  char body[512];
  snprintf(body, sizeof(body), "%s{\"name\":5}}", head);
  refused_body(body, "meta.name: expected a string");
  snprintf(body, sizeof(body), "%s{\"service\":[]}}", head);
  refused_body(body, "meta.service: expected a string");
  snprintf(body, sizeof(body), "%s{\"host\":true}}", head);
  refused_body(body, "meta.host: expected a string");
  snprintf(body, sizeof(body), "%s{\"python\":1}}", head);
  refused_body(body, "meta.python: expected a string");
  snprintf(body, sizeof(body), "%s{\"pid\":-1}}", head);
  refused_body(body, "meta.pid: expected an integer in [0, 2^53)");
  snprintf(body, sizeof(body), "%s{\"started_unix_ns\":1764089000123456789}}", head);
  refused_body(body, "meta.started_unix_ns: expected a decimal string of at most 19 digits");
  snprintf(body, sizeof(body), "%s{\"started_unix_ns\":\"12a\"}}", head);
  refused_body(body, "meta.started_unix_ns: expected a decimal string of at most 19 digits");
  snprintf(body, sizeof(body), "%s{\"started_unix_ns\":\"99999999999999999999\"}}", head);
  refused_body(body, "meta.started_unix_ns: expected a decimal string of at most 19 digits");
  /* null meta and null members are the same as absent */
  snprintf(body, sizeof(body), "%snull}", head);
  ingest_batch *b = NULL;
  ck_assert_int_eq(ingest_parse(body, strlen(body), &lim, &b, NULL, 0), 0);
  ck_assert_int_eq(b->meta.present, 0);
  ingest_free(b);
  snprintf(body, sizeof(body), "%s{\"name\":null,\"pid\":null,\"started_unix_ns\":null,\"extra\":{}}}", head);
  ck_assert_int_eq(ingest_parse(body, strlen(body), &lim, &b, NULL, 0), 0);
  ck_assert_int_eq(b->meta.present, 1);
  ck_assert_ptr_null(b->meta.name);
  ck_assert_int_eq(b->meta.pid, -1);
  ck_assert_int_eq(b->meta.started_ns, -1);
  ingest_free(b);
}
END_TEST

START_TEST(kind_field)
{
  refused("[{\"id\":1}]", "events[0].k: missing");
  refused("[{\"k\":\"lag\",\"t\":1,\"d\":1},{\"k\":3}]", "events[1].k: expected a string");
  refused("[5]", "events[0]: expected an object");
  ingest_batch *b = accepted("[{\"k\":\"gc\",\"t\":1},{\"k\":\"future-kind\"},{\"k\":\"lag\",\"t\":1,\"d\":2}]");
  ck_assert_int_eq(b->unknown, 2);
  ck_assert_uint_eq(b->events, 3);
  ck_assert_uint_eq(b->nlags, 1);
  ingest_free(b);
}
END_TEST

/* Every integer time field of every kind: missing, wrong type, fraction, negative, too big. */
START_TEST(times_and_durations)
{
  static const struct { const char *ev; const char *field; } cases[] = {
    {"{\"k\":\"task\",\"id\":1,\"t\":%s}", "t"},
    {"{\"k\":\"step\",\"id\":1,\"d\":0,\"t\":%s}", "t"},
    {"{\"k\":\"step\",\"id\":1,\"t\":0,\"d\":%s}", "d"},
    {"{\"k\":\"await\",\"id\":1,\"d\":0,\"t\":%s}", "t"},
    {"{\"k\":\"await\",\"id\":1,\"t\":0,\"d\":%s}", "d"},
    {"{\"k\":\"block\",\"id\":1,\"d\":0,\"t\":%s}", "t"},
    {"{\"k\":\"block\",\"id\":1,\"t\":0,\"d\":%s}", "d"},
    {"{\"k\":\"lag\",\"d\":0,\"t\":%s}", "t"},
    {"{\"k\":\"lag\",\"t\":0,\"d\":%s}", "d"},
    {"{\"k\":\"done\",\"id\":1,\"state\":\"ok\",\"t\":%s}", "t"},
    {"{\"k\":\"end\",\"t\":%s}", "t"},
    {"{\"k\":\"drop\",\"n\":%s}", "n"},
    {"{\"k\":\"task\",\"id\":2,\"t\":1,\"parent\":%s}", "parent"},
    {"{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":1,\"line\":%s}", "line"},
  };
  static const char *const badvals[] = {"-1", "1.5", "\"5\"", "9007199254740992", "1e300", "true", "[]"};
  for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    for(size_t k = 0; k < sizeof(badvals) / sizeof(badvals[0]); k++) {
      char ev[256], events[300], want[128];
      snprintf(ev, sizeof(ev), cases[i].ev, badvals[k]);
      snprintf(events, sizeof(events), "[{\"k\":\"lag\",\"t\":0,\"d\":0},%s]", ev);
      snprintf(want, sizeof(want), "events[1].%s: expected an integer in [0, 2^53)", cases[i].field);
      refused(events, want);
    }
    /* the largest allowed value passes */
    char ev[256], events[300];
    snprintf(ev, sizeof(ev), cases[i].ev, "9007199254740991");
    snprintf(events, sizeof(events), "[%s]", ev);
    ingest_free(accepted(events));
  }
  /* an item's end must stay below 2^53 too, so derived times (durations) stay JSON-safe */
  refused("[{\"k\":\"step\",\"id\":1,\"t\":9007199254740991,\"d\":1}]",
          "events[0].d: t + d must stay below 2^53");
  refused("[{\"k\":\"lag\",\"t\":4503599627370496,\"d\":4503599627370496}]",
          "events[0].d: t + d must stay below 2^53");
  ingest_free(accepted("[{\"k\":\"await\",\"id\":1,\"t\":4503599627370496,\"d\":4503599627370495}]"));
  /* a missing t/d is named as missing */
  refused("[{\"k\":\"step\",\"id\":1,\"d\":1}]", "events[0].t: missing");
  refused("[{\"k\":\"step\",\"id\":1,\"t\":1}]", "events[0].d: missing");
  refused("[{\"k\":\"lag\",\"t\":1}]", "events[0].d: missing");
  refused("[{\"k\":\"end\"}]", "events[0].t: missing");
  refused("[{\"k\":\"drop\"}]", "events[0].n: missing");
}
END_TEST

START_TEST(task_ids)
{
  static const char *const evs[] = {
    "{\"k\":\"task\",\"t\":1,\"id\":%s}", "{\"k\":\"step\",\"t\":1,\"d\":1,\"id\":%s}",
    "{\"k\":\"await\",\"t\":1,\"d\":1,\"id\":%s}", "{\"k\":\"done\",\"t\":1,\"state\":\"ok\",\"id\":%s}",
  };
  for(size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
    const char *bad[] = {"0", "-3", "2.5", "\"1\"", "null"};
    for(size_t k = 0; k < 5; k++) {
      char ev[200], events[220];
      snprintf(ev, sizeof(ev), evs[i], bad[k]);
      snprintf(events, sizeof(events), "[%s]", ev);
      refused(events, "events[0].id: expected a positive integer below 2^53");
    }
    char events[220], ev[200];
    snprintf(ev, sizeof(ev), evs[i], "1");
    snprintf(events, sizeof(events), "[%s]", ev);
    ingest_free(accepted(events));
  }
  refused("[{\"k\":\"task\",\"t\":1}]", "events[0].id: missing");
  /* a block outside any task: id 0 or absent */
  ingest_batch *b = accepted("[{\"k\":\"block\",\"id\":0,\"t\":1,\"d\":2},{\"k\":\"block\",\"t\":3,\"d\":4}]");
  ck_assert_uint_eq(b->nblocks, 2);
  ck_assert_int_eq(b->blocks[1].id, 0);
  ck_assert_ptr_null(b->blocks[1].file);
  ck_assert_int_eq(b->blocks[1].line, -1);
  ingest_free(b);
  refused("[{\"k\":\"block\",\"id\":-1,\"t\":1,\"d\":2}]", "events[0].id: expected an integer in [0, 2^53)");
  /* parent absent or null means a root */
  b = accepted("[{\"k\":\"task\",\"id\":3,\"t\":1},{\"k\":\"task\",\"id\":4,\"t\":1,\"parent\":null}]");
  ck_assert_int_eq(b->tasks[0].parent, 0);
  ck_assert_int_eq(b->tasks[1].parent, 0);
  ingest_free(b);
}
END_TEST

START_TEST(strings)
{
  static const struct { const char *ev; const char *field; } cases[] = {
    {"{\"k\":\"task\",\"id\":1,\"t\":1,\"name\":%s}", "name"},
    {"{\"k\":\"task\",\"id\":1,\"t\":1,\"coro\":%s}", "coro"},
    {"{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":1,\"what\":%s}", "what"},
    {"{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":1,\"file\":%s}", "file"},
    {"{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":1,\"func\":%s}", "func"},
    {"{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"error\",\"exc\":%s}", "exc"},
    {"{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{\"file\":%s}]}", "stack[0].file"},
    {"{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{\"func\":%s}]}", "stack[0].func"},
    {"{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{\"src\":%s}]}", "stack[0].src"},
  };
  for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char ev[256], events[300], want[128];
    snprintf(ev, sizeof(ev), cases[i].ev, "12");
    snprintf(events, sizeof(events), "[%s]", ev);
    snprintf(want, sizeof(want), "events[0].%s: expected a string", cases[i].field);
    refused(events, want);
    snprintf(ev, sizeof(ev), cases[i].ev, "\"\xc3\x28x\""); /* a bad continuation byte */
    snprintf(events, sizeof(events), "[%s]", ev);
    snprintf(want, sizeof(want), "events[0].%s: not valid UTF-8", cases[i].field);
    refused(events, want);
    snprintf(ev, sizeof(ev), cases[i].ev, "\"caf\\u00e9 \\u2603\"");
    snprintf(events, sizeof(events), "[%s]", ev);
    ingest_free(accepted(events));
  }
  /* length limits: ordinary strings at 4096, exc and src at 16384 */
  lim.max_string = 8;
  lim.max_exc = 12;
  refused("[{\"k\":\"task\",\"id\":1,\"t\":1,\"name\":\"123456789\"}]", "events[0].name: longer than 8 bytes");
  ingest_free(accepted("[{\"k\":\"task\",\"id\":1,\"t\":1,\"name\":\"12345678\"}]"));
  refused("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"error\",\"exc\":\"1234567890123\"}]",
          "events[0].exc: longer than 12 bytes");
  ingest_free(accepted("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"error\",\"exc\":\"123456789012\"}]"));
}
END_TEST

/* Parses `events` in a valid batch whose "strings" member is `strings` (JSON text). */
static int parse_with_strings(const char *table, const char *events, ingest_batch **b, char *detail,
                              size_t dlen)
{
  static char body[65536];
  snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"events\":%s,\"strings\":%s}",
           events, table);
  return ingest_parse(body, strlen(body), &lim, b, detail, dlen);
}

static void refused_with_strings(const char *table, const char *events, const char *want)
{
  ingest_batch *b = (ingest_batch *)1;
  char detail[256];
  ck_assert_msg(parse_with_strings(table, events, &b, detail, sizeof(detail)) == LS_EINVAL, "accepted: %s", events);
  ck_assert_ptr_null(b);
  ck_assert_str_eq(detail, want);
}

/* A batch's strings table (additive to v1): every string field of an event may name one of the
 * batch's "strings" by index, and reads exactly as if the string stood there; the table is
 * checked once, each use against its field's limit, and belongs to its own batch only. */
START_TEST(strings_table)
{
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(parse_with_strings(
                     "[\"app/db.py\",\"fetch_user\",\"AsyncSession.execute\",\"caf\\u00e9\",\"ValueError: x\"]",
                     "[{\"k\":\"task\",\"id\":1,\"t\":0,\"name\":3,\"coro\":1},"
                     "{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":2,\"what\":2,\"file\":0,\"line\":7,\"func\":1},"
                     "{\"k\":\"await\",\"id\":1,\"t\":5,\"d\":2,\"what\":\"inline\",\"file\":0,\"func\":1},"
                     "{\"k\":\"block\",\"id\":1,\"t\":9,\"d\":1,\"stack\":[{\"file\":0,\"line\":3,\"func\":1,\"src\":3}]},"
                     "{\"k\":\"done\",\"id\":1,\"t\":20,\"state\":\"error\",\"exc\":4}]",
                     &b, detail, sizeof(detail)), 0);
  ck_assert_str_eq(b->tasks[0].name, "caf\xc3\xa9");
  ck_assert_str_eq(b->tasks[0].coro, "fetch_user");
  ck_assert_str_eq(b->awaits[0].what, "AsyncSession.execute");
  ck_assert_str_eq(b->awaits[0].file, "app/db.py");
  ck_assert_str_eq(b->awaits[0].func, "fetch_user");
  ck_assert_str_eq(b->awaits[1].what, "inline");
  /* a string named twice is one string: the writer's work per site is per string */
  ck_assert_ptr_eq(b->awaits[0].file, b->awaits[1].file);
  ck_assert_ptr_eq(b->awaits[0].func, b->tasks[0].coro);
  ck_assert_str_eq(b->blocks[0].file, "app/db.py");
  ck_assert_str_eq(b->blocks[0].src, "caf\xc3\xa9");
  char stack[256];
  snprintf(stack, sizeof(stack), "%.*s", (int)b->blocks[0].stack_len, b->stacks + b->blocks[0].stack_off);
  ck_assert_str_eq(stack, "[{\"file\":\"app/db.py\",\"line\":3,\"func\":\"fetch_user\",\"src\":\"caf\xc3\xa9\"}]");
  ck_assert_str_eq(b->dones[0].exc, "ValueError: x");
  ingest_free(b);

  const char *one = "[{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":1,\"file\":%s}]";
  char events[256];
  snprintf(events, sizeof(events), one, "2");
  refused_with_strings("[\"a\",\"b\"]", events, "events[0].file: expected a string, or an index into strings (0 to 1)");
  snprintf(events, sizeof(events), one, "-1");
  refused_with_strings("[\"a\",\"b\"]", events, "events[0].file: expected a string, or an index into strings (0 to 1)");
  snprintf(events, sizeof(events), one, "0.5");
  refused_with_strings("[\"a\",\"b\"]", events, "events[0].file: expected a string, or an index into strings (0 to 1)");
  snprintf(events, sizeof(events), one, "0");
  refused_with_strings("[]", events, "events[0].file: expected a string");
  refused_with_strings("null", events, "events[0].file: expected a string");
  refused_with_strings("{}", events, "strings: expected an array of strings");
  refused_with_strings("[\"a\",3]", events, "strings[1]: expected a string");
  refused_with_strings("[\"a\",null]", events, "strings[1]: expected a string");
  refused_with_strings("[\"\xc3\x28x\"]", events, "strings[0]: not valid UTF-8");
  /* each use meets its own field's limit; the table holds what the longest field may */
  lim.max_string = 8;
  lim.max_exc = 12;
  refused_with_strings("[\"123456789\"]", events, "events[0].file: strings[0] is longer than 8 bytes");
  ck_assert_int_eq(parse_with_strings("[\"123456789\"]", "[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"error\",\"exc\":0}]",
                                      &b, detail, sizeof(detail)), 0);
  ck_assert_str_eq(b->dones[0].exc, "123456789");
  ingest_free(b);
  refused_with_strings("[\"1234567890123\"]", events, "strings[0]: longer than 12 bytes");
  ingest_default_limits(&lim);
  /* meta's fields are strings of their own */
  b = (ingest_batch *)1;
  const char *meta = "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"meta\":{\"name\":0},\"events\":[],\"strings\":[\"x\"]}";
  ck_assert_int_eq(ingest_parse(meta, strlen(meta), &lim, &b, detail, sizeof(detail)), LS_EINVAL);
  ck_assert_str_eq(detail, "meta.name: expected a string");
  /* a batch's table is its own: the next batch of the body cannot name it */
  refused_body("{\"v\":1,\"batches\":[{\"v\":1,\"batch\":\"a\",\"session\":\"s\",\"strings\":[\"f.py\"],"
               "\"events\":[{\"k\":\"task\",\"id\":1,\"t\":0,\"coro\":0}]},"
               "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[{\"k\":\"task\",\"id\":1,\"t\":0,\"coro\":0}]}]}",
               "batches[1].events[0].coro: expected a string");
}
END_TEST

START_TEST(done_state)
{
  refused("[{\"k\":\"done\",\"id\":1,\"t\":1}]", "events[0].state: missing");
  refused("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"failed\"}]",
          "events[0].state: expected one of ok, cancelled, error");
  refused("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":1}]",
          "events[0].state: expected one of ok, cancelled, error");
  ingest_batch *b = accepted("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"cancelled\"},"
                             "{\"k\":\"done\",\"id\":2,\"t\":1,\"state\":\"error\",\"exc\":\"ValueError: x\"}]");
  ck_assert_str_eq(b->dones[0].state, "cancelled");
  ck_assert_str_eq(b->dones[1].exc, "ValueError: x");
  ingest_free(b);
}
END_TEST

/* done's optional status: the HTTP status a request's task responded with, 100..599. */
START_TEST(done_status)
{
  ingest_batch *b = accepted("[{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"ok\",\"status\":200},"
                             "{\"k\":\"done\",\"id\":2,\"t\":1,\"state\":\"ok\"},"
                             "{\"k\":\"done\",\"id\":3,\"t\":1,\"state\":\"ok\",\"status\":null},"
                             "{\"k\":\"done\",\"id\":4,\"t\":1,\"state\":\"error\",\"exc\":\"E\",\"status\":500},"
                             "{\"k\":\"done\",\"id\":5,\"t\":1,\"state\":\"ok\",\"status\":100},"
                             "{\"k\":\"done\",\"id\":6,\"t\":1,\"state\":\"ok\",\"status\":599}]");
  ck_assert_int_eq(b->dones[0].status, 200);
  ck_assert_int_eq(b->dones[1].status, -1);
  ck_assert_int_eq(b->dones[2].status, -1);
  ck_assert_int_eq(b->dones[3].status, 500);
  ck_assert_str_eq(b->dones[3].state, "error");
  ck_assert_int_eq(b->dones[4].status, 100);
  ck_assert_int_eq(b->dones[5].status, 599);
  ingest_free(b);
  static const char *const bad[] = {"99", "600", "0", "-200", "200.5", "\"200\"", "true", "[200]", "1e300"};
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char ev[160];
    snprintf(ev, sizeof(ev), "[{\"k\":\"step\",\"id\":1,\"t\":1,\"d\":1},"
                             "{\"k\":\"done\",\"id\":1,\"t\":1,\"state\":\"ok\",\"status\":%s}]", bad[i]);
    refused(ev, "events[1].status: expected an integer in [100, 599]");
  }
}
END_TEST

START_TEST(stacks)
{
  refused("[{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":{}}]", "events[0].stack: expected an array");
  refused("[{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{},3]}]", "events[0].stack[1]: expected an object");
  refused("[{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{\"line\":-2}]}]",
          "events[0].stack[0].line: expected an integer in [0, 2^53)");
  lim.max_frames = 2;
  refused("[{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{},{},{}]}]", "events[0].stack: more than 2 frames");
  ingest_batch *b = accepted("[{\"k\":\"block\",\"id\":1,\"t\":1,\"d\":1,\"stack\":[{},{\"file\":\"a\\\"b\",\"line\":null}]}]");
  char stack[256];
  snprintf(stack, sizeof(stack), "%.*s", (int)b->blocks[0].stack_len, b->stacks + b->blocks[0].stack_off);
  ck_assert_str_eq(stack, "[{\"file\":null,\"line\":null,\"func\":null,\"src\":null},"
                          "{\"file\":\"a\\\"b\",\"line\":null,\"func\":null,\"src\":null}]");
  ingest_free(b);
}
END_TEST

START_TEST(limits)
{
  lim.max_events = 3;
  refused("[{\"k\":\"end\",\"t\":1},{\"k\":\"end\",\"t\":1},{\"k\":\"end\",\"t\":1},{\"k\":\"end\",\"t\":1}]",
          "events: more than 3 events in one batch");
  ingest_free(accepted("[{\"k\":\"end\",\"t\":1},{\"k\":\"end\",\"t\":1},{\"k\":\"end\",\"t\":1}]"));
  lim.max_depth = 4;
  /* {events:[{x:[[ ]]}]} is depth 5 */
  refused("[{\"k\":\"x\",\"deep\":[[1]]}]", "body: nested deeper than 4 levels");
  ingest_free(accepted("[{\"k\":\"x\",\"deep\":[1],\"s\":\"[[[[[[\"}]"));
}
END_TEST

/* A multi-batch body: a chain in body order, each batch as if parsed alone, the first owning the
 * rest; errors carry "batches[i]." and the limits count over the whole body. */
START_TEST(several_batches_in_one_body)
{
  const char *two = "{\"v\":1,\"batches\":["
                    "{\"v\":1,\"batch\":\"a\",\"session\":\"s1\",\"meta\":{\"name\":\"A\"},"
                    "\"events\":[{\"k\":\"task\",\"id\":1,\"t\":0},{\"k\":\"end\",\"t\":9}]},"
                    "{\"v\":1,\"batch\":\"b\",\"session\":\"s2\",\"events\":[{\"k\":\"block\",\"t\":1,\"d\":2,"
                    "\"stack\":[{\"file\":\"f.py\",\"line\":3}]}]}]}";
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(ingest_parse(two, strlen(two), &lim, &b, detail, sizeof(detail)), 0);
  ck_assert_uint_eq(ingest_count(b), 2);
  ck_assert_str_eq(b->batch, "a");
  ck_assert_str_eq(b->meta.name, "A");
  ck_assert_uint_eq(b->ntasks, 1);
  ck_assert(b->has_end && b->end_t == 9);
  ingest_batch *c = b->next;
  ck_assert_str_eq(c->session, "s2");
  ck_assert(!c->meta.present && !c->has_end);
  ck_assert_uint_eq(c->nblocks, 1);
  ck_assert_str_eq(c->blocks[0].file, "f.py");
  ck_assert_ptr_null(c->next);
  ingest_free(b); /* the chain's stack text and arena: ASan finds a leak or a double free */
  ck_assert_uint_eq(ingest_count(NULL), 0);

  refused_body("{\"v\":1,\"batches\":[{\"v\":1,\"batch\":\"a\",\"session\":\"s\",\"events\":[]},"
               "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[{\"k\":\"block\",\"t\":1,\"d\":1,"
               "\"stack\":[{\"src\":\"x\"},{\"line\":-1}]}]}]}",
               "batches[1].events[0].stack[1].line: expected an integer in [0, 2^53)");
  refused_body("{\"v\":1,\"batches\":[{\"v\":1,\"batch\":\"a\",\"session\":\"s\",\"meta\":3,\"events\":[]}]}",
               "batches[0].meta: expected an object");
  refused_body("{\"v\":1,\"batches\":[]}", "batches: expected at least one batch");
  lim.max_events = 3;
  refused_body("{\"v\":1,\"batches\":[{\"v\":1,\"batch\":\"a\",\"session\":\"s\",\"events\":[{\"k\":\"x\"},{\"k\":\"x\"}]},"
               "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[{\"k\":\"x\"},{\"k\":\"x\"}]}]}",
               "batches[1].events: more than 3 events in one body (its batches together)");
  lim.max_batches = 1;
  refused_body("{\"v\":1,\"batches\":[{\"v\":1,\"batch\":\"a\",\"session\":\"s\",\"events\":[]},"
               "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[]}]}",
               "batches: more than 1 batches in one body");
}
END_TEST

START_TEST(aggregates_and_end)
{
  ingest_batch *b = accepted("[{\"k\":\"end\",\"t\":10},{\"k\":\"end\",\"t\":7},{\"k\":\"step\",\"id\":1,\"t\":5,\"d\":20},"
                             "{\"k\":\"drop\",\"n\":3},{\"k\":\"drop\",\"n\":4},{\"k\":\"lag\",\"t\":2,\"d\":9}]");
  ck_assert_int_eq(b->end_t, 10);
  ck_assert_int_eq(b->max_t, 25);
  ck_assert_int_eq(b->dropped, 7);
  ck_assert_int_eq(b->max_d[INGEST_STEP], 20);
  ck_assert_int_eq(b->max_d[INGEST_LAG], 9);
  ingest_free(b);
  b = accepted("[]");
  ck_assert_uint_eq(b->events, 0);
  ck_assert_int_eq(b->has_end, 0);
  ingest_free(b);
}
END_TEST

START_TEST(ids_follow_the_charset)
{
  ck_assert_int_eq(ingest_id_ok("s-9f1c2e"), 1);
  ck_assert_int_eq(ingest_id_ok("A.b_c:d@e+f~g=h-1"), 1);
  ck_assert_int_eq(ingest_id_ok(""), 0);
  ck_assert_int_eq(ingest_id_ok("a b"), 0);
  ck_assert_int_eq(ingest_id_ok("a/b"), 0);
  ck_assert_int_eq(ingest_id_ok("a%2f"), 0);
  char id[130];
  memset(id, 'x', 128);
  id[128] = '\0';
  ck_assert_int_eq(ingest_id_ok(id), 1);
  id[128] = 'x';
  id[129] = '\0';
  ck_assert_int_eq(ingest_id_ok(id), 0);
}
END_TEST

/* A member given twice counts the first time, for "k" too (found by the fuzzer: the counting
 * walk and the filling walk once disagreed, and rows were written past their array). */
START_TEST(repeated_members)
{
  ingest_batch *b = accepted("[{\"k\":\"lag\",\"k\":\"step\",\"id\":1,\"t\":1,\"d\":2},"
                             "{\"k\":\"step\",\"id\":1,\"t\":5,\"t\":-1,\"d\":1,\"k\":\"task\"}]");
  ck_assert_uint_eq(b->nlags, 1);
  ck_assert_uint_eq(b->nsteps, 1);
  ck_assert_uint_eq(b->ntasks, 0);
  ck_assert_int_eq(b->steps[0].t, 5);
  ingest_free(b);
  refused("[{\"k\":5,\"k\":\"lag\",\"t\":1,\"d\":1}]", "events[0].k: expected a string");
}
END_TEST

START_TEST(unknown_fields_ignored)
{
  ingest_batch *b = NULL;
  const char *body = "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"future\":{\"x\":[1]},"
                     "\"events\":[{\"k\":\"step\",\"id\":1,\"t\":1,\"d\":1,\"extra\":\"y\"}]}";
  ck_assert_int_eq(ingest_parse(body, strlen(body), &lim, &b, NULL, 0), 0);
  ck_assert_uint_eq(b->nsteps, 1);
  ingest_free(b);
  ingest_free(NULL);
}
END_TEST

/* A \u0000 in any string would be cut there by cJSON: "b\u0000A" and "b\u0000B" would be one
 * batch id (the second answered as a duplicate and lost), a name shortened without a word. */
START_TEST(nul_in_strings_refused)
{
  refused_body("{\"v\":1,\"batch\":\"b\\u0000A\",\"session\":\"s1\",\"events\":[]}",
               "body: a string holds \\u0000 (near byte 17): no text may contain U+0000");
  refused("[{\"k\":\"task\",\"id\":1,\"t\":0,\"name\":\"x\\u0000y\"}]",
          "body: a string holds \\u0000 (near byte 79): no text may contain U+0000");
  /* an escaped backslash followed by u0000 is text, and other escapes pass */
  ingest_batch *b = accepted("[{\"k\":\"task\",\"id\":1,\"t\":0,\"name\":\"a\\\\u0000 \\u0001 \\\"q\\\" \\\\\"}]");
  ck_assert_str_eq(b->tasks[0].name, "a\\u0000 \x01 \"q\" \\");
  ingest_free(b);
  /* the scan before parsing reads strings eight bytes at a time: every place of an escape, a quote
   * and brackets inside a string relative to those eight bytes says the same (nesting held to the
   * body's own 3 levels: a bracket in a string counted as one would refuse it) */
  lim.max_depth = 3;
  for(int pad = 0; pad < 20; pad++) {
    char name[64], events[256], want[128];
    memset(name, 'a', (size_t)pad);
    name[pad] = '\0';
    snprintf(events, sizeof(events), "[{\"k\":\"task\",\"id\":1,\"t\":0,\"name\":\"%s\\u0000\"}]", name);
    snprintf(want, sizeof(want), "body: a string holds \\u0000 (near byte %d): no text may contain U+0000", 78 + pad);
    refused(events, want);
    snprintf(events, sizeof(events), "[{\"k\":\"task\",\"id\":1,\"t\":0,\"name\":\"%s\\\"[[{{\\\\\"}]", name);
    b = accepted(events); /* brackets in a string are text, an escaped quote does not end it */
    ck_assert_uint_eq(strlen(b->tasks[0].name), (size_t)pad + 6);
    ck_assert_str_eq(b->tasks[0].name + pad, "\"[[{{\\");
    ingest_free(b);
  }
}
END_TEST

/* Drop counts add up saturating at 2^53 - 1: 1025 drops of 2^53 - 1 overflowed an int64_t
 * (a UBSan report, 9223372036854775807 stored). */
START_TEST(dropped_saturates)
{
  static char body[1100 * 48];
  size_t n = (size_t)snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"events\":[");
  for(int i = 0; i < 1025; i++)
    n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"k\":\"drop\",\"n\":9007199254740991}", i ? "," : "");
  snprintf(body + n, sizeof(body) - n, "]}");
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(ingest_parse(body, strlen(body), &lim, &b, detail, sizeof(detail)), 0);
  ck_assert_int_eq(b->dropped, INGEST_MAX_INT);
  ingest_free(b);
}
END_TEST


/* Issue 11 defect 3: a batch's parsed form is capped (LS_ETOOBIG) and drawn from a shared
 * budget (LS_EBUSY) that holds it until ingest_free. */
START_TEST(parse_capped_and_budgeted)
{
  const char *head = "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[],\"pad\":[";
  size_t zeros = 100000, hl = strlen(head);
  char *body = malloc(hl + 2 * zeros + 2);
  ck_assert_ptr_nonnull(body);
  memcpy(body, head, hl);
  for(size_t i = 0; i < zeros; i++)
    memcpy(body + hl + 2 * i, "0,", 2);
  memcpy(body + hl + 2 * zeros - 1, "]}", 3);
  size_t len = strlen(body);
  ingest_limits l = lim;
  ingest_batch *b = NULL;
  char detail[256];
  l.max_tree = 1 << 20; /* 100000 values need > 6.4 MB */
  ck_assert_int_eq(ingest_parse(body, len, &l, &b, detail, sizeof(detail)), LS_ETOOBIG);
  ck_assert_ptr_null(b);
  ck_assert_str_eq(detail, "body: the parsed batch needs more than 1048576 bytes (each JSON value takes at "
                           "least 64 bytes once parsed): send smaller batches");
  membudget mb;
  membudget_init(&mb, 4 << 20);
  l.max_tree = 0;
  l.budget = &mb;
  ck_assert_int_eq(ingest_parse(body, len, &l, &b, detail, sizeof(detail)), LS_EBUSY);
  ck_assert_str_eq(detail, "the server's memory for batches being parsed and queued (--max-memory) is in "
                           "use; retry later");
  ck_assert_int_eq(membudget_used(&mb), 0); /* a refused parse gives everything back */
  membudget_init(&mb, 64 << 20);
  ck_assert_int_eq(ingest_parse(body, len, &l, &b, detail, sizeof(detail)), 0);
  long long held = membudget_used(&mb);
  ck_assert_int_gt(held, 100000LL * 64); /* the tree, held while the batch lives */
  ingest_free(b);
  ck_assert_int_eq(membudget_used(&mb), 0);
  free(body);
}
END_TEST

/* Fills n standard blocks of a fresh arena drawing on budget, then frees it. */
static void blocks_used_and_freed(membudget *budget, int n)
{
  arena a;
  arena_init(&a);
  arena_limit(&a, 0, budget);
  for(int i = 0; i < n; i++)
    ck_assert_ptr_nonnull(arena_alloc(&a, 60 * 1024)); /* one 64 KiB block each */
  ck_assert_int_ge(membudget_used(budget), (long long)n * 64 * 1024);
  arena_free(&a);
  ck_assert_int_eq(membudget_used(budget), 0); /* a kept block is nobody's */
}

/* Frees the arena arg on this thread, another than the one that filled it. */
static void *free_arena_here(void *arg)
{
  arena_free(arg);
  return NULL;
}

/* Freed standard blocks are kept, at most 512 (32 MiB), for the next arenas of any thread: a parse
 * of a large body no longer takes all its memory fresh from the system (page faults), also when
 * the arena it fills is freed by another thread (a batch's: parsed, then freed by the writer); a
 * large request's own block is not kept; the budget counts only what arenas hold. */
START_TEST(arena_blocks_kept_for_any_thread)
{
  arena_pool_drain();
  ck_assert_uint_eq(arena_kept_blocks(), 0);
  membudget budget;
  membudget_init(&budget, 64 << 20);
  blocks_used_and_freed(&budget, 3);
  ck_assert_uint_eq(arena_kept_blocks(), 3);
  blocks_used_and_freed(&budget, 600);
  ck_assert_uint_eq(arena_kept_blocks(), 512); /* no more, however many were freed */
  blocks_used_and_freed(&budget, 5); /* taken from the kept ones, and given back */
  ck_assert_uint_eq(arena_kept_blocks(), 512);
  arena a;
  arena_init(&a);
  ck_assert_ptr_nonnull(arena_alloc(&a, 1 << 20)); /* a block of its own */
  ck_assert_ptr_nonnull(arena_alloc(&a, 100));     /* a standard one: a kept block */
  ck_assert_uint_eq(arena_kept_blocks(), 511);
  arena_free(&a);
  ck_assert_uint_eq(arena_kept_blocks(), 512);
  /* filled here, freed by another thread: its blocks serve this thread's next arena */
  arena_pool_drain();
  arena_init(&a);
  arena_limit(&a, 0, &budget);
  for(int i = 0; i < 20; i++)
    ck_assert_ptr_nonnull(arena_alloc(&a, 60 * 1024));
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, free_arena_here, &a), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_uint_eq(arena_kept_blocks(), 20);
  ck_assert_int_eq(membudget_used(&budget), 0);
  arena_init(&a);
  for(int i = 0; i < 20; i++)
    ck_assert_ptr_nonnull(arena_alloc(&a, 60 * 1024));
  ck_assert_uint_eq(arena_kept_blocks(), 0); /* all 20 taken from the kept ones */
  arena_free(&a);
  ck_assert_uint_eq(arena_kept_blocks(), 20);
  arena_pool_drain();
  ck_assert_uint_eq(arena_kept_blocks(), 0);
}
END_TEST

/* ingest_json_parse_in: the tree's nodes come from the caller's arena (the arena grows by the
 * tree, a cap refuses it), and a plain cJSON parse afterwards still uses malloc. */
START_TEST(json_tree_in_an_arena)
{
  const char *text = "{\"a\":[1,2,3],\"b\":{\"c\":\"d\"}}";
  arena a;
  arena_init(&a);
  cJSON *root = ingest_json_parse_in(&a, text, strlen(text));
  ck_assert_ptr_nonnull(root);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "a")), 3);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "b"), "c")->valuestring,
                   "d");
  ck_assert_uint_gt(a.used, 0); /* the nodes are the arena's */
  arena_free(&a);
  ck_assert_ptr_null(ingest_json_parse_in(&a, "{\"a\":", 5)); /* not JSON */
  arena_free(&a);
  arena_init(&a);
  arena_limit(&a, 16, NULL); /* too small for one node */
  ck_assert_ptr_null(ingest_json_parse_in(&a, text, strlen(text)));
  ck_assert_int_eq(a.failed, ARENA_CAPPED);
  arena_free(&a);
  cJSON *own = cJSON_Parse(text); /* outside: malloc'ed, cJSON_Delete frees it */
  ck_assert_ptr_nonnull(own);
  cJSON_Delete(own);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ingest");
  TCase *tc = tcase_create("validation");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, design_example);
  tcase_add_test(tc, arena_blocks_kept_for_any_thread);
  tcase_add_test(tc, top_level_fields);
  tcase_add_test(tc, meta_fields);
  tcase_add_test(tc, kind_field);
  tcase_add_test(tc, times_and_durations);
  tcase_add_test(tc, task_ids);
  tcase_add_test(tc, strings);
  tcase_add_test(tc, strings_table);
  tcase_add_test(tc, done_state);
  tcase_add_test(tc, done_status);
  tcase_add_test(tc, stacks);
  tcase_add_test(tc, limits);
  tcase_add_test(tc, aggregates_and_end);
  tcase_add_test(tc, several_batches_in_one_body);
  tcase_add_test(tc, ids_follow_the_charset);
  tcase_add_test(tc, repeated_members);
  tcase_add_test(tc, unknown_fields_ignored);
  tcase_add_test(tc, nul_in_strings_refused);
  tcase_add_test(tc, dropped_saturates);
  tcase_add_test(tc, parse_capped_and_budgeted);
  tcase_add_test(tc, json_tree_in_an_arena);
  suite_add_tcase(s, tc);
  return check_run(s);
}
