/* test_export.c — Check suite for server/export.c on a small stored session (a real SQLite file
 * written by the writer): the JSON export is ingest-v1 batches that ingest_parse takes back with
 * the same rows, split into lines past 50,000 events with batch ids that stay valid for long
 * session ids; the Chrome trace holds every task, slice and lag sample (an overlapping slice cut
 * and saying by how much); OTLP has a span per task; unknown format, missing session and a full
 * buffer answer their codes. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_run.h"
#include "export.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_fixture.h"
#include "writer.h"

static store_fixture fx;

/* Two tasks; task 2's second step starts inside its first (an ingested session may say so) and
 * must come out clipped; a block with a stack, two lag samples, a failed task with its exception,
 * and names that need escaping. */
#define SESSION_BATCH \
  "{\"v\":1,\"batch\":\"b-x1\",\"session\":\"s-exp\",\"meta\":{\"name\":\"GET /q\\\"uote\",\"service\":\"svc\"," \
  "\"pid\":42,\"host\":\"h\",\"python\":\"3.12.1\",\"started_unix_ns\":\"1700000000000000000\"},\"events\":[" \
  "{\"k\":\"task\",\"id\":1,\"parent\":0,\"name\":\"Main\\n1\",\"coro\":\"app.main\",\"t\":0}," \
  "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"T\\u00e92\",\"coro\":\"app.child\",\"t\":1000}," \
  "{\"k\":\"step\",\"id\":2,\"t\":2000,\"d\":5000}," \
  "{\"k\":\"step\",\"id\":2,\"t\":4000,\"d\":9000}," \
  "{\"k\":\"await\",\"id\":1,\"t\":1500,\"d\":20000,\"what\":\"sleep\",\"file\":\"app.py\",\"line\":7,\"func\":\"main\"}," \
  "{\"k\":\"block\",\"id\":1,\"t\":30000,\"d\":150000,\"stack\":[{\"file\":\"app.py\",\"line\":9," \
  "\"func\":\"main\",\"src\":\"time.sleep(1)\"}]}," \
  "{\"k\":\"lag\",\"t\":40000,\"d\":2300000},{\"k\":\"lag\",\"t\":50000,\"d\":1000}," \
  "{\"k\":\"done\",\"id\":2,\"t\":60000,\"state\":\"error\",\"exc\":\"ValueError: no\"}," \
  "{\"k\":\"end\",\"t\":200000}]}"

static ingest_batch *parse_ok(const char *body, size_t len)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  int rc = ingest_parse(body, len, &lim, &b, detail, sizeof detail);
  ck_assert_msg(rc == 0, "refused (%s): %.300s", detail, body);
  return b;
}

static void seed(const char *body, size_t len)
{
  ingest_batch *b = parse_ok(body, len);
  int dup = 0;
  ck_assert_int_eq(writer_put(fx.w, b, &dup), 0);
  ck_assert_int_eq(dup, 0);
}

/* A session of n lag samples and one task, under session id `id`. */
static void seed_lags(const char *id, size_t n)
{
  size_t cap = 1024 + n * 40; /* the header holds the id twice (up to 128 bytes each) */
  char *body = malloc(cap);
  ck_assert_ptr_nonnull(body);
  size_t len = (size_t)snprintf(body, cap, "{\"v\":1,\"batch\":\"b-%.100s\",\"session\":\"%s\",\"meta\":{\"name\":\"many\"},"
                                "\"events\":[{\"k\":\"task\",\"id\":1,\"t\":0}", id, id);
  for(size_t i = 0; i < n; i++)
    len += (size_t)snprintf(body + len, cap - len, ",{\"k\":\"lag\",\"t\":%zu,\"d\":7}", i * 10);
  len += (size_t)snprintf(body + len, cap - len, "]}");
  seed(body, len);
  free(body);
}

static void fixture_up(void)
{
  log_set_level(LOG_ERROR);
  store_fixture_up(&fx, "export", 0);
  seed(SESSION_BATCH, strlen(SESSION_BATCH));
}

static void fixture_down(void)
{
  store_fixture_down(&fx);
}

static void export_ok(const char *id, const char *format, jbuf *out)
{
  jbuf_init(out, (size_t)256 << 20);
  int rc = export_session(fx.s, id, format, out);
  ck_assert_msg(rc == 0, "export %s %s: %s", id, format, ls_strerror(rc));
  ck_assert_ptr_nonnull(out->data);
}

START_TEST(json_is_batches_ingest_takes_back)
{
  jbuf out;
  export_ok("s-exp", "json", &out);
  ck_assert_str_eq(export_media_type("json", &out), "application/json");
  ck_assert_int_eq(out.data[out.len - 1], '\n');
  ck_assert_ptr_null(memchr(out.data, '\n', out.len - 1)); /* one line: one batch */
  ingest_batch *b = parse_ok(out.data, out.len - 1);
  ck_assert_str_eq(b->batch, "export-s-exp");
  ck_assert_str_eq(b->session, "s-exp");
  ck_assert_str_eq(b->meta.name, "GET /q\"uote");
  ck_assert_str_eq(b->meta.service, "svc");
  ck_assert_int_eq(b->meta.pid, 42);
  ck_assert_str_eq(b->meta.started, "1700000000000000000");
  ck_assert_uint_eq(b->ntasks, 2);
  ck_assert_str_eq(b->tasks[0].name, "Main\n1");
  ck_assert_str_eq(b->tasks[1].name, "T\xc3\xa9" "2");
  ck_assert_int_eq(b->tasks[1].parent, 1);
  ck_assert_uint_eq(b->nsteps, 2);
  ck_assert_uint_eq(b->nawaits, 1);
  ck_assert_str_eq(b->awaits[0].what, "sleep");
  ck_assert_int_eq(b->awaits[0].line, 7);
  ck_assert_uint_eq(b->nblocks, 1);
  ck_assert_str_eq(b->blocks[0].src, "time.sleep(1)");
  ck_assert_int_eq(b->blocks[0].d, 150000);
  ck_assert_uint_eq(b->nlags, 2);
  ck_assert_uint_eq(b->ndones, 1);
  ck_assert_str_eq(b->dones[0].state, "error");
  ck_assert_str_eq(b->dones[0].exc, "ValueError: no");
  ck_assert_int_eq(b->has_end, 1);
  ck_assert_int_eq(b->end_t, 200000);
  ingest_free(b);
  jbuf_free(&out);
}
END_TEST

/* Past 50,000 events the export is JSON Lines, each line a complete batch with its own id. */
START_TEST(json_splits_large_sessions)
{
  seed_lags("s-many", 50005);
  jbuf out;
  export_ok("s-many", "json", &out);
  ck_assert_str_eq(export_media_type("json", &out), "application/x-ndjson");
  size_t lines = 0, lags = 0, tasks = 0;
  for(char *p = out.data; p < out.data + out.len;) {
    char *nl = memchr(p, '\n', (size_t)(out.data + out.len - p));
    ck_assert_ptr_nonnull(nl);
    ingest_batch *b = parse_ok(p, (size_t)(nl - p));
    char want[64];
    snprintf(want, sizeof want, lines ? "export-s-many-%zu" : "export-s-many", lines);
    ck_assert_str_eq(b->batch, want);
    ck_assert_str_eq(b->meta.name, "many"); /* meta in every batch */
    ck_assert_uint_le(b->events, 50000);
    lags += b->nlags;
    tasks += b->ntasks;
    ingest_free(b);
    lines++;
    p = nl + 1;
  }
  ck_assert_uint_eq(lines, 2);
  ck_assert_uint_eq(lags, 50005);
  ck_assert_uint_eq(tasks, 1);
  jbuf_free(&out);
}
END_TEST

/* A 128-byte session id leaves no room for "export-" and "-k": the stem is cut and keeps a CRC. */
START_TEST(json_batch_ids_stay_valid_for_long_session_ids)
{
  char id[129];
  memset(id, 'a', 128);
  id[128] = '\0';
  id[127] = 'z';
  seed_lags(id, 3);
  jbuf out;
  export_ok(id, "json", &out);
  ingest_batch *b = parse_ok(out.data, out.len - 1);
  ck_assert_int_eq(ingest_id_ok(b->batch), 1);
  ck_assert_uint_le(strlen(b->batch), 128 - 11); /* room for "-<k>" on later lines */
  ck_assert_ptr_nonnull(strchr(b->batch, '~'));
  ck_assert_str_eq(b->session, id);
  ingest_free(b);
  jbuf_free(&out);
}
END_TEST

static size_t count_events(const cJSON *events, const char *ph, const char *cat)
{
  size_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, events) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "ph");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "cat");
    if(cJSON_IsString(p) && !strcmp(p->valuestring, ph) && (!cat || (cJSON_IsString(c) && !strcmp(c->valuestring, cat))))
      n++;
  }
  return n;
}

START_TEST(chrome_trace_holds_every_row)
{
  jbuf out;
  export_ok("s-exp", "chrome", &out);
  ck_assert_str_eq(export_media_type("chrome", &out), "application/json");
  cJSON *j = cJSON_Parse(out.data);
  ck_assert_msg(j != NULL, "not JSON: %.300s", out.data);
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "traceEvents");
  ck_assert(cJSON_IsArray(ev));
  ck_assert_uint_eq(count_events(ev, "M", NULL), 2 + 2); /* process, loop thread, a thread per task */
  ck_assert_uint_eq(count_events(ev, "X", "step"), 2);
  ck_assert_uint_eq(count_events(ev, "X", "await"), 1);
  ck_assert_uint_eq(count_events(ev, "X", "block"), 1);
  ck_assert_uint_eq(count_events(ev, "C", "lag"), 2);
  ck_assert_uint_eq(count_events(ev, "i", "task"), 2 + 1); /* created x2, done x1 */
  /* the second step starts at 4 us inside the first (2..7 us): cut to end with it */
  size_t clipped = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, ev) {
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(args, "clipped_ns");
    if(!cJSON_IsNumber(c))
      continue;
    clipped++;
    ck_assert_double_eq(c->valuedouble, 9000 - 3000);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(e, "ts")->valuedouble, 4.0);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(e, "dur")->valuedouble, 3.0);
  }
  ck_assert_uint_eq(clipped, 1);
  const cJSON *other = cJSON_GetObjectItemCaseSensitive(j, "otherData");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(other, "session")->valuestring, "s-exp");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(other, "started_unix_ns")->valuestring, "1700000000000000000");
  ck_assert_ptr_nonnull(strstr(out.data, "\"ts\":40.000")); /* ns as microseconds, 3 decimals */
  cJSON_Delete(j);
  jbuf_free(&out);
}
END_TEST

START_TEST(otlp_has_a_span_per_task)
{
  jbuf out;
  export_ok("s-exp", "otlp", &out);
  cJSON *j = cJSON_Parse(out.data);
  ck_assert_msg(j != NULL, "not JSON: %.300s", out.data);
  const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "resourceSpans"), 0);
  const cJSON *ss = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rs, "scopeSpans"), 0);
  const cJSON *spans = cJSON_GetObjectItemCaseSensitive(ss, "spans");
  ck_assert(cJSON_IsArray(spans));
  ck_assert_int_ge(cJSON_GetArraySize(spans), 2);
  ck_assert_ptr_nonnull(strstr(out.data, "app.child"));
  cJSON_Delete(j);
  jbuf_free(&out);
}
END_TEST

START_TEST(errors_have_their_codes)
{
  jbuf out;
  jbuf_init(&out, 1 << 20);
  ck_assert_int_eq(export_session(fx.s, "s-exp", "xml", &out), LS_EINVAL);
  ck_assert_int_eq(export_session(fx.s, "s-nope", "json", &out), LS_ENOTFOUND);
  ck_assert_int_eq(export_session(fx.s, "s-nope", "chrome", &out), LS_ENOTFOUND);
  jbuf_free(&out);
  static const char *const formats[] = {"json", "chrome"};
  for(size_t i = 0; i < 2; i++) {
    jbuf_init(&out, 64); /* far too small: refused, not cut */
    ck_assert_int_eq(export_session(fx.s, "s-exp", formats[i], &out), LS_ETOOBIG);
    jbuf_free(&out);
  }
}
END_TEST

static Suite *export_suite(void)
{
  Suite *s = suite_create("export");
  TCase *c = tcase_create("export");
  tcase_set_timeout(c, 120);
  tcase_add_unchecked_fixture(c, fixture_up, fixture_down);
  tcase_add_test(c, json_is_batches_ingest_takes_back);
  tcase_add_test(c, json_splits_large_sessions);
  tcase_add_test(c, json_batch_ids_stay_valid_for_long_session_ids);
  tcase_add_test(c, chrome_trace_holds_every_row);
  tcase_add_test(c, otlp_has_a_span_per_task);
  tcase_add_test(c, errors_have_their_codes);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(export_suite());
}
