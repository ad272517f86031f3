/* test_collector_sender.c — the collector's sender (collector/src) on its own, without Python:
 * offline into a sink file, each line of which the server's own parser (server/ingest.c) must accept
 * with the same events, and online against the real server started in-process (stored, or 401 lost). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_run.h"
#include "collector_fixture.h"
#include "export.h"
#include "http_fixture.h"
#include "ingest.h"
#include "log.h"
#include "lscore.h"

/* ---------------------------------------------------------------- the sender, offline, into a sink */

/* An offline collector writing its batches to a fresh sink file named sink (stem and pid). */
static ls_collector *sink_collector(char sink[256], const char *stem, size_t cap, int flush_ms, size_t batch_max)
{
  snprintf(sink, 256, "%s/%s-%d.jsonl", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", stem, (int)getpid());
  unlink(sink);
  ls_config cfg = {.url = "http://127.0.0.1:1", .buffer_cap = cap, .flush_interval_ms = flush_ms,
                   .timeout_ms = 1000, .batch_max = batch_max, .offline = 1, .sink_path = sink};
  ls_collector *c = NULL;
  ck_assert_int_eq(ls_collector_new(&cfg, &c), LSC_OK);
  return c;
}

/* Every batch in the sink file, parsed as the server parses it (each must pass), in order; *n of
 * them. The file is removed. sink_batches_free frees them. */
static ingest_batch **sink_batches(const char *sink, size_t *n)
{
  FILE *f = fopen(sink, "rb");
  ck_assert_ptr_nonnull(f);
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch **bs = NULL;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  *n = 0;
  while((len = getline(&line, &cap, f)) > 0) {
    ingest_batch *b = NULL;
    char detail[256] = "";
    int rc = ingest_parse(line, (size_t)len, &lim, &b, detail, sizeof detail);
    ck_assert_msg(rc == 0, "the server refused batch %zu: %s", *n, detail);
    bs = realloc(bs, (*n + 1) * sizeof *bs);
    ck_assert_ptr_nonnull(bs);
    bs[(*n)++] = b;
  }
  free(line);
  fclose(f);
  unlink(sink);
  return bs;
}

static void sink_batches_free(ingest_batch **bs, size_t n)
{
  for(size_t i = 0; i < n; i++)
    ingest_free(bs[i]);
  free(bs);
}

START_TEST(offline_sink_batches_parse_on_the_server)
{
  char sink[256];
  ls_collector *c = sink_collector(sink, "lssink", 1 << 20, 10, 4096);
  ls_session *s = NULL;
  ck_assert_int_eq(ls_session_open(c, "s-unit-1", "{\"name\":\"GET /users/{id} \\u00e9\\\"<b>\"}", &s), LSC_OK);
  const int ntasks = 300; /* several batches at 4 kB each */
  for(int i = 1; i <= ntasks; i++) {
    ls_event t = {.kind = LS_K_TASK, .id = (uint64_t)i, .parent = (uint64_t)(i / 2), .t = (uint64_t)i * 10,
                  .name = S("Task \xff"), .coro = S("mod.coro")};
    ck_assert_int_eq(ls_emit(s, &t), LSC_OK);
    ls_event st = {.kind = LS_K_STEP, .id = (uint64_t)i, .t = (uint64_t)i * 10 + 1, .d = 5};
    ck_assert_int_eq(ls_emit(s, &st), LSC_OK);
  }
  ck_assert_int_eq(ls_session_close(s, 100000), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(10000)), LSC_OK);
  ls_stats st;
  ls_collector_stats(c, &st);
  ck_assert_uint_eq(st.dropped, 0);
  ck_assert_uint_ge(st.batches_saved, 2);
  ls_collector_free(c, 1000);

  size_t lines = 0, tasks = 0, steps = 0;
  ingest_batch **bs = sink_batches(sink, &lines);
  int ended = 0;
  for(size_t i = 0; i < lines; i++) {
    ck_assert_str_eq(bs[i]->session, "s-unit-1");
    tasks += bs[i]->ntasks;
    steps += bs[i]->nsteps;
    ended |= bs[i]->has_end;
  }
  sink_batches_free(bs, lines);
  ck_assert_uint_eq(lines, st.batches_saved);
  ck_assert_uint_eq(tasks, (size_t)ntasks);
  ck_assert_uint_eq(steps, (size_t)ntasks);
  ck_assert_int_eq(ended, 1);
}
END_TEST

/* A named session's meta is written by the sender from its fields (ls_session_begin): name, pid,
 * loop, started_unix_ns, the share of requests (fraction, from millionths), the collector's static
 * fields and the route, as the server's own parser reads them; a new name and a loop number set
 * later go out with the next batch; a session opened with a whole meta has no name to set. */
START_TEST(named_session_meta_is_written_by_the_sender)
{
  char sink[256];
  snprintf(sink, sizeof sink, "%s/lsnamed-%d.jsonl", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  unlink(sink);
  ls_config cfg = {.url = "http://127.0.0.1:1", .buffer_cap = 1 << 20, .flush_interval_ms = 600000,
                   .timeout_ms = 1000, .batch_max = 1 << 20, .offline = 1, .sink_path = sink,
                   .meta_static = ",\"service\":\"svc <b>\",\"host\":\"h1\""};
  ls_collector *c = NULL;
  ck_assert_int_eq(ls_collector_new(&cfg, &c), LSC_OK);
  static const char name[] = "GET /w/\xc3\xa9 \"q\"";
  /* a: one request in 200,000 (meta.fraction 0.000005); b: 0.333333; m: none */
  ls_session_start st = {name, sizeof name - 1, 0, 1700000000123456789ull, 5};
  ls_session *a = NULL, *b = NULL, *m = NULL;
  ck_assert_int_eq(ls_session_begin(c, "s-named-a", &st, &a), LSC_OK);
  ls_session_start st_b = {"x", 1, 3, 5, 333333};
  ck_assert_int_eq(ls_session_begin(c, "s-named-b", &st_b, &b), LSC_OK);
  ck_assert_int_eq(ls_session_begin(c, "bad id!", &st_b, &m), LSC_EINVAL);
  ck_assert_int_eq(ls_session_begin(c, "", &st_b, &m), LSC_EINVAL);
  ck_assert_int_eq(ls_session_begin(c, "s-\xc3\xa9", &st_b, &m), LSC_EINVAL);
  char id[66];
  memset(id, 'z', 64);
  id[64] = 0;                                                      /* 64 bytes: one too many */
  ck_assert_int_eq(ls_session_begin(c, id, &st_b, &m), LSC_EINVAL);
  id[63] = 0;                                                      /* 63: the most there is room for */
  ls_session *longest = NULL;
  ck_assert_int_eq(ls_session_begin(c, id, &st_b, &longest), LSC_OK);
  ck_assert_int_eq(ls_session_close(longest, 1), LSC_OK);
  ck_assert_int_eq(ls_session_open(c, "s-named-m", "{\"name\":\"whole\"}", &m), LSC_OK);
  ck_assert_int_eq(ls_session_set_name(m, "no", 2), LSC_EINVAL);
  ls_event ev = {.kind = LS_K_STEP, .id = 1, .t = 10, .d = 5};
  ck_assert_int_eq(ls_emit(a, &ev), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(10000)), LSC_OK); /* a's first batch: as begun */
  ck_assert_int_eq(ls_session_set_name(a, "GET /w/{x}", 10), LSC_OK);
  ls_session_set_loop(a, 9);
  ck_assert_int_eq(ls_session_set_route(a, "GET /w/{x}", 10), LSC_OK);
  ev.t = 20;
  ck_assert_int_eq(ls_emit(a, &ev), LSC_OK);
  ls_session *all[] = {a, b, m};
  for(int i = 0; i < 3; i++)
    ck_assert_int_eq(ls_session_close(all[i], 100), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(10000)), LSC_OK);
  ls_collector_free(c, 1000);

  size_t nb = 0;
  ingest_batch **bs = sink_batches(sink, &nb);
  int a_seen = 0, seen = 0;
  for(size_t i = 0; i < nb; i++) {
    ingest_batch *bt = bs[i];
    if(strcmp(bt->session, "s-named-a") == 0) {
      ck_assert_int_eq(bt->meta.pid, (int64_t)getpid());
      ck_assert_int_eq(bt->meta.started_ns, 1700000000123456789ll);
      ck_assert_str_eq(bt->meta.service, "svc <b>");
      ck_assert_str_eq(bt->meta.host, "h1");
      ck_assert(bt->meta.fraction == 0.000005);
      if(a_seen++ == 0) {
        ck_assert_str_eq(bt->meta.name, name);
        ck_assert_int_eq(bt->meta.loop, -1);
        ck_assert_ptr_null(bt->meta.route);
      } else {
        ck_assert_str_eq(bt->meta.name, "GET /w/{x}");
        ck_assert_int_eq(bt->meta.loop, 9);
        ck_assert_str_eq(bt->meta.route, "GET /w/{x}");
      }
      seen |= 1;
    } else if(strcmp(bt->session, "s-named-b") == 0) {
      ck_assert_str_eq(bt->meta.name, "x");
      ck_assert_int_eq(bt->meta.loop, 3);
      ck_assert_int_eq(bt->meta.started_ns, 5);
      ck_assert(bt->meta.fraction == 0.333333);
      seen |= 2;
    } else if(strcmp(bt->session, id) == 0) {
      ck_assert_str_eq(bt->meta.name, "x");
      seen |= 8;
    } else {
      ck_assert_str_eq(bt->session, "s-named-m");
      ck_assert_str_eq(bt->meta.name, "whole");
      ck_assert_int_eq(bt->meta.pid, -1);
      ck_assert(bt->meta.fraction == 0);
      seen |= 4;
    }
  }
  sink_batches_free(bs, nb);
  ck_assert_int_eq(seen, 15);
  ck_assert_int_eq(a_seen, 2);
}
END_TEST

/* A route set on an open session (ls_session_set_route) goes out in the meta of its batches from
 * then on, added by the sender beside the meta's own fields, as the server reads it; also into an
 * empty meta, and a later route replaces an earlier one. */
START_TEST(route_goes_out_in_the_meta)
{
  char sink[256];
  ls_collector *c = sink_collector(sink, "lsroute", 1 << 20, 600000, 1 << 20);
  ls_session *a = NULL, *b = NULL, *z = NULL;
  ck_assert_int_eq(ls_session_open(c, "s-route-a", "{\"name\":\"GET /users/42\",\"pid\":7}", &a), LSC_OK);
  ck_assert_int_eq(ls_session_open(c, "s-route-b", "{}", &b), LSC_OK);
  ck_assert_int_eq(ls_session_open(c, "s-route-z", "{\"name\":\"no route\"}", &z), LSC_OK);
  ck_assert_int_eq(ls_session_set_route(a, "GET /users/{id}", 9), LSC_OK); /* replaced below */
  static const char route[] = "GET /users/{id} \"\xc3\xa9\"";
  ck_assert_int_eq(ls_session_set_route(a, route, sizeof route - 1), LSC_OK);
  ck_assert_int_eq(ls_session_set_route(b, "POST /orders", 12), LSC_OK);
  ls_session *all[] = {a, b, z};
  for(int i = 0; i < 3; i++) {
    ls_event st = {.kind = LS_K_STEP, .id = 1, .t = 10, .d = 5};
    ck_assert_int_eq(ls_emit(all[i], &st), LSC_OK);
    ck_assert_int_eq(ls_session_close(all[i], 100), LSC_OK);
  }
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(10000)), LSC_OK);
  ls_collector_free(c, 1000);

  size_t nb = 0;
  ingest_batch **bs = sink_batches(sink, &nb);
  int seen = 0;
  for(size_t i = 0; i < nb; i++) {
    ingest_batch *bt = bs[i];
    if(strcmp(bt->session, "s-route-a") == 0) {
      ck_assert_str_eq(bt->meta.route, "GET /users/{id} \"\xc3\xa9\"");
      ck_assert_str_eq(bt->meta.name, "GET /users/42");
      ck_assert_int_eq(bt->meta.pid, 7);
      seen |= 1;
    } else if(strcmp(bt->session, "s-route-b") == 0) {
      ck_assert_str_eq(bt->meta.route, "POST /orders");
      seen |= 2;
    } else {
      ck_assert_str_eq(bt->session, "s-route-z");
      ck_assert_ptr_null(bt->meta.route);
      ck_assert_str_eq(bt->meta.name, "no route");
      seen |= 4;
    }
  }
  sink_batches_free(bs, nb);
  ck_assert_int_eq(seen, 7);
}
END_TEST

/* Sessions are reused once sent (a web app opens one per request): a second wave of named and
 * routed sessions allocates nothing in the store, and what each wave's batches say is its own
 * (a reused session carries no name, route, loop or events of the one before). Names and routes
 * too long for the session's rooms are malloc'd, counted, and arrive whole. */
START_TEST(sessions_are_reused_and_allocate_nothing)
{
  char sink[256];
  ls_collector *c = sink_collector(sink, "lsreuse", 4 << 20, 600000, 1 << 20);
  char longer[300];
  memset(longer, 'L', sizeof longer - 1);
  longer[sizeof longer - 1] = 0;
  ls_stats st0, st1, st2;
  /* waves 0 and 1 fill the spares (the sender may start sending wave 0 before it is all open) */
  for(int wave = 0; wave < 4; wave++) {
    if(wave == 2) ls_collector_stats(c, &st0);
    if(wave == 3) ls_collector_stats(c, &st1);
    for(int i = 0; i < 40; i++) {
      char id[64], name[64], route[64];
      snprintf(id, sizeof id, "s-reuse-%d-%d", wave, i);
      snprintf(name, sizeof name, "GET /w%d/%d", wave, i);
      snprintf(route, sizeof route, "GET /w%d/{n}", wave);
      /* wave 3: half the names and routes are past the room (95 bytes) */
      int big = wave == 3 && i % 4 < 2;
      ls_session_start start = {big ? longer : name, big ? sizeof longer - 1 : strlen(name), 0, 1, 0};
      ls_session *s = NULL;
      ck_assert_int_eq(ls_session_begin(c, id, &start, &s), LSC_OK);
      /* a route on every other one (the others must not show the last owner's): set while open,
       * or given at the close (i % 4 == 3) as a request's end gives it */
      if(wave > 0 && i % 4 == 1)
        ck_assert_int_eq(ls_session_set_route(s, big ? longer : route, big ? sizeof longer - 1 : strlen(route)), LSC_OK);
      ls_event ev = {.kind = LS_K_STEP, .id = 1, .t = 10, .d = (uint64_t)wave};
      ck_assert_int_eq(ls_emit(s, &ev), LSC_OK);
      if(wave > 0 && i % 4 == 3)
        ck_assert_int_eq(ls_session_close_routed(s, 100, route, strlen(route)), LSC_OK);
      else
        ck_assert_int_eq(ls_session_close(s, 100), LSC_OK);
    }
    ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(10000)), LSC_OK);
  }
  ls_collector_stats(c, &st2);
  ck_assert_msg(st1.store_allocs == st0.store_allocs, "wave 2: %llu allocations (%llu chunks)",
                (unsigned long long)(st1.store_allocs - st0.store_allocs),
                (unsigned long long)(st1.chunk_allocs - st0.chunk_allocs)); /* all reused, in the rooms */
  ck_assert_uint_eq(st2.store_allocs - st1.store_allocs, 20 + 10); /* wave 3: 20 long names, 10 long routes */
  ck_assert_uint_eq(st2.chunk_allocs, st0.chunk_allocs);
  ck_assert_uint_eq(st2.sessions, 0); /* none left behind (a close racing a send once left one) */
  ck_assert_uint_eq(st2.bytes_used, 0);
  ls_collector_free(c, 1000);

  size_t nb = 0;
  ingest_batch **bs = sink_batches(sink, &nb);
  ck_assert_uint_ge(nb, 160); /* a session of wave 0 may go in two (the sender starts while it is open) */
  for(size_t i = 0; i < nb; i++) {
    ingest_batch *bt = bs[i];
    int wave, k;
    ck_assert_int_eq(sscanf(bt->session, "s-reuse-%d-%d", &wave, &k), 2);
    int big = wave == 3 && k % 4 < 2;
    char name[64], route[64];
    snprintf(name, sizeof name, "GET /w%d/%d", wave, k);
    snprintf(route, sizeof route, "GET /w%d/{n}", wave);
    ck_assert_str_eq(bt->meta.name, big ? longer : name);
    if(wave > 0 && k % 4 == 1) ck_assert_str_eq(bt->meta.route, big ? longer : route);
    else if(wave > 0 && k % 4 == 3 && bt->has_end) ck_assert_str_eq(bt->meta.route, route); /* given at the close */
    else if(wave > 0 && k % 4 == 3) ck_assert(!bt->meta.route || !strcmp(bt->meta.route, route));
    else ck_assert_ptr_null(bt->meta.route);
    ck_assert_int_eq(bt->meta.loop, -1);
  }
  sink_batches_free(bs, nb);
}
END_TEST

/* A session's route and name replaced over and over while the sender ships its batches (every
 * millisecond, small batches): each batch carries one of the values set, whole, never a room
 * rewritten under a send that reads it (ASan's build would also see a label freed too early). */
START_TEST(labels_replaced_while_the_sender_reads_them)
{
  char sink[256];
  ls_collector *c = sink_collector(sink, "lslabels", 4 << 20, 1, 256);
  static const char *routes[] = {"GET /a/{x}", "POST /bbbbbbbb/{y}/zzz",
    "GET /a-route-longer-than-its-room/0123456789012345678901234567890123456789012345678901234567890123456789/{id}"};
  ls_session_start start = {"n-0", 3, 0, 1, 0};
  ls_session *s = NULL;
  ck_assert_int_eq(ls_session_begin(c, "s-labels-1", &start, &s), LSC_OK);
  for(uint64_t i = 1; i <= 20000; i++) {
    const char *r = routes[i % 3];
    ck_assert_int_eq(ls_session_set_route(s, r, strlen(r)), LSC_OK);
    const char *nm = routes[(i + 1) % 3];
    ck_assert_int_eq(ls_session_set_name(s, nm, strlen(nm)), LSC_OK);
    ls_event ev = {.kind = LS_K_STEP, .id = i, .t = i * 10, .d = 5};
    ck_assert_int_eq(ls_emit(s, &ev), LSC_OK);
    if(i % 2000 == 0) nanosleep(&(struct timespec){0, 1000000}, NULL); /* let sends overlap the writes */
  }
  /* the route given at the close, longer than its room, is the one the batch with the end carries */
  ck_assert_int_eq(ls_session_close_routed(s, 300000, routes[2], strlen(routes[2])), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(20000)), LSC_OK);
  ls_collector_free(c, 1000);
  size_t nb = 0;
  ingest_batch **bs = sink_batches(sink, &nb);
  ck_assert_uint_ge(nb, 2);
  int ends = 0;
  for(size_t i = 0; i < nb; i++) {
    if(bs[i]->has_end) {
      ends++;
      ck_assert_ptr_nonnull(bs[i]->meta.route);
      ck_assert_str_eq(bs[i]->meta.route, routes[2]);
    }
  }
  ck_assert_int_eq(ends, 1);
  for(size_t i = 0; i < nb; i++) {
    int route_ok = 0, name_ok = !strcmp(bs[i]->meta.name, "n-0");
    for(int k = 0; k < 3; k++) {
      route_ok |= bs[i]->meta.route && !strcmp(bs[i]->meta.route, routes[k]);
      name_ok |= !strcmp(bs[i]->meta.name, routes[k]);
    }
    ck_assert_msg(name_ok, "batch %zu: name %s", i, bs[i]->meta.name);
    ck_assert_msg(route_ok || (i == 0 && !bs[i]->meta.route), "batch %zu: route %s", i,
                  bs[i]->meta.route ? bs[i]->meta.route : "(none)");
  }
  sink_batches_free(bs, nb);
}
END_TEST

static int strcmp_p(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* Every event of the batches in sink as one text, a line per event: "session line# event", sorted,
 * so each session's events come together, in the order they were sent. */
static char *sink_events(const char *sink)
{
  FILE *f = fopen(sink, "rb");
  ck_assert_ptr_nonnull(f);
  char **rows = NULL;
  size_t nrows = 0, lineno = 0;
  char *line = NULL;
  size_t cap = 0;
  while(getline(&line, &cap, f) > 0) {
    cJSON *b = cJSON_Parse(line);
    ck_assert_ptr_nonnull(b);
    const char *sess = cJSON_GetStringValue(cJSON_GetObjectItem(b, "session"));
    ck_assert_ptr_nonnull(sess);
    cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(b, "events")) {
      char *txt = cJSON_PrintUnformatted(ev);
      ls_buf row;
      ls_buf_init(&row, 1 << 20);
      ls_buf_puts(&row, sess);
      char num[32];
      snprintf(num, sizeof num, " %08zu ", lineno++);
      ls_buf_puts(&row, num);
      ls_buf_puts(&row, txt);
      ck_assert_int_eq(row.failed, 0);
      cJSON_free(txt);
      rows = realloc(rows, (nrows + 1) * sizeof *rows);
      ck_assert_ptr_nonnull(rows);
      rows[nrows++] = row.data;
    }
    cJSON_Delete(b);
  }
  free(line);
  fclose(f);
  unlink(sink);
  qsort(rows, nrows, sizeof *rows, strcmp_p);
  ls_buf all;
  ls_buf_init(&all, 64 << 20);
  for(size_t i = 0; i < nrows; i++) {
    ls_buf_puts(&all, strchr(strchr(rows[i], ' ') + 1, ' ') + 1); /* without the line number */
    ls_buf_puts(&all, "\n");
    free(rows[i]);
  }
  free(rows);
  ck_assert_int_eq(all.failed, 0);
  return all.data;
}

/* ls_emit_step, ls_emit_await, ls_emit_task and ls_emit_done (the writers of the events every
 * task records) store what ls_emit stores for the same events: two collectors, one written each
 * way, with 200 sessions each (every session's first event, a task, a step or an await, takes the
 * new-chunk path) and one long session through growing chunks, encode to the same events. A
 * default name given as its number says what the name "Task-<n>" says. */
START_TEST(straight_writers_store_what_ls_emit_stores)
{
  char sink_a[256], sink_b[256];
  ls_collector *a = sink_collector(sink_a, "lsemit-a", 8 << 20, 600000, 4096);
  ls_collector *b = sink_collector(sink_b, "lsemit-b", 8 << 20, 600000, 4096);
  static const char *whats[] = {"yield", "gather", "sleep", "Future", "caf\xc3\xa9 \xff"};
  uint64_t t = 1000, nev = 0;
  for(int k = 0; k <= 200; k++) {
    char id[32];
    snprintf(id, sizeof id, "s-emit-%03d", k);
    ls_session *sa = NULL, *sb = NULL;
    ck_assert_int_eq(ls_session_open(a, id, "{}", &sa), LSC_OK);
    ck_assert_int_eq(ls_session_open(b, id, "{}", &sb), LSC_OK);
    uint64_t n = k == 200 ? 3000 : 3; /* the last one long */
    for(uint64_t i = 1; i <= n; i++) {
      /* times that go back as well as forward (a zigzag difference), durations past a varint byte */
      uint64_t at = i % 3 ? t - 7 : t + 123456789;
      uint64_t d = (i * 7919 + (uint64_t)k) % 100000;
      int32_t line = i % 5 ? (int32_t)i : -(int32_t)i;
      ls_str what = {whats[(i + (uint64_t)k) % 5], strlen(whats[(i + (uint64_t)k) % 5]), 0};
      ls_str file = i % 4 ? S("/srv/app/handlers.py") : (ls_str){NULL, 0, 0};
      ls_str func = i % 4 ? S("get_user") : (ls_str){NULL, 0, 0};
      ls_event aw = {.kind = LS_K_AWAIT, .id = i, .t = at, .d = d, .line = line, .what = what, .file = file, .func = func};
      ls_event st = {.kind = LS_K_STEP, .id = i, .t = t, .d = d / 3};
      if((k + (int)i) % 3 == 0) { /* a task first: default names (0, small, large), given ones, none */
        static const char *given[] = {"worker", "Task-007", "", "caf\xc3\xa9"};
        uint64_t num = i % 4 == 0 ? 0 : i % 4 == 1 ? i : (uint64_t)1e18 + i;
        char def[32];
        snprintf(def, sizeof def, "Task-%llu", (unsigned long long)num);
        uint64_t j = i / 3 + (uint64_t)k; /* i is a multiple of 3 in the long session */
        ls_str name = j % 3 ? (ls_str){NULL, 0, 0} : (ls_str){given[j / 3 % 4], strlen(given[j / 3 % 4]), 0};
        ls_str coro = i % 5 ? S("app.handlers.get_user") : (ls_str){NULL, 0, 0};
        ls_event tk = {.kind = LS_K_TASK, .id = i, .parent = i / 2, .t = at, .coro = coro,
                       .name = name.p ? name : (ls_str){def, strlen(def), 0}};
        if(i % 7 == 0) tk.name = (ls_str){NULL, 0, 0}; /* no name at all: the same as an empty one */
        ck_assert_int_eq(ls_emit(sa, &tk), LSC_OK);
        ck_assert_int_eq(ls_emit_task(sb, i, i / 2, at, i % 7 == 0 ? (ls_str){"", 0, 0} : name, num, coro), LSC_OK);
        nev++;
      }
      if((k + (int)i) % 2) { /* a step first */
        ck_assert_int_eq(ls_emit(sa, &st), LSC_OK);
        ck_assert_int_eq(ls_emit_step(sb, i, t, d / 3), LSC_OK);
      }
      ck_assert_int_eq(ls_emit(sa, &aw), LSC_OK);
      ck_assert_int_eq(ls_emit_await(sb, i, at, d, line, what, file, func), LSC_OK);
      if(!((k + (int)i) % 2)) {
        ck_assert_int_eq(ls_emit(sa, &st), LSC_OK);
        ck_assert_int_eq(ls_emit_step(sb, i, t, d / 3), LSC_OK);
      }
      if(i % 4 == 1) { /* its end: ok, cancelled, an error with its text, a request's status */
        int state = (int)(i % 3);
        int32_t status = i % 8 == 1 ? 200 : 0;
        ls_str exc = state == LS_S_ERROR ? S("ValueError: bad \xff input") : (ls_str){NULL, 0, 0};
        ls_event dn = {.kind = LS_K_DONE, .id = i, .t = t + d, .state = state, .status = status, .exc = exc};
        ck_assert_int_eq(ls_emit(sa, &dn), LSC_OK);
        ck_assert_int_eq(ls_emit_done(sb, i, t + d, state, status, exc), LSC_OK);
        nev++;
      }
      t += 1 + i % 1000;
      nev += 2;
    }
    ck_assert_int_eq(ls_session_close(sa, t), LSC_OK);
    ck_assert_int_eq(ls_session_close(sb, t), LSC_OK);
    nev++;
  }
  ck_assert_int_eq(ls_collector_flush(a, check_wait_ms(10000)), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(b, check_wait_ms(10000)), LSC_OK);
  ls_stats st_a, st_b;
  ls_collector_stats(a, &st_a);
  ls_collector_stats(b, &st_b);
  ck_assert_uint_eq(st_a.events, nev);
  ck_assert_uint_eq(st_b.events, nev);
  ck_assert_uint_eq(st_a.dropped + st_b.dropped, 0);
  ls_collector_free(a, 1000);
  ls_collector_free(b, 1000);
  char *ea = sink_events(sink_a), *eb = sink_events(sink_b);
  ck_assert_ptr_nonnull(strstr(ea, "\"k\":\"await\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"k\":\"step\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"k\":\"task\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"name\":\"Task-10000000000000000"));
  ck_assert_ptr_nonnull(strstr(ea, "\"name\":\"Task-0\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"name\":\"Task-007\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"k\":\"done\""));
  ck_assert_ptr_nonnull(strstr(ea, "\"status\":200"));
  ck_assert_str_eq(ea, eb);
  free(ea);
  free(eb);
}
END_TEST

/* ---------------------------------------------------------------- the sender, online */

/* A session of n tasks (a task and a step each) through a collector posting to url with token,
 * batch_max bytes of records a batch, gzip as ls_config's; returns what flush answered, stats in
 * *st. */
static int send_sessions(const ls_config *cfg, const char *prefix, int n, int ntasks, int parked, ls_stats *st);
static int send_session(const char *url, const char *token, const char *id, int n, size_t batch_max, int gzip,
                        ls_stats *st)
{
  ls_config cfg = {.url = url, .token = token, .buffer_cap = 1 << 20, .flush_interval_ms = 10,
                   .timeout_ms = 5000, .batch_max = batch_max, .gzip = gzip};
  return send_sessions(&cfg, id, 1, n, 0, st);
}

/* The real server in-process on a fresh store (named name), taking --max-body 1 MiB and token (NULL:
 * none); its base URL in url. */
static http_server *server_up(store_fixture *st, membudget *budget, const char *name, const char *token,
                              char *url, size_t cap)
{
  log_set_level(LOG_ERROR);
  store_fixture_up(st, name, 0);
  membudget_init(budget, 64 << 20);
  http_server *h = NULL;
  unsigned port = http_fixture_start(st, budget, token, 1 << 20, 0, 60, &h);
  snprintf(url, cap, "http://127.0.0.1:%u", port);
  return h;
}

/* The sender (lscollector.c, lshttp.c: libcurl, gzip, bearer token) against the real server
 * in-process: with the right token every batch is answered 202 and stored; with a wrong one each
 * is refused 401, not retried (it would not get better), and flush says the batches are lost. */
START_TEST(online_sender_against_the_real_server)
{
  store_fixture st;
  membudget budget;
  char url[64];
  http_server *h = server_up(&st, &budget, "collector", "tok-123", url, sizeof url);

  ls_stats stats;
  ck_assert_int_eq(send_session(url, "tok-123", "s-online", 2000, 4096, 0, &stats), LSC_OK);
  ck_assert_uint_ge(stats.batches_sent, 2); /* 4 kB batches of ~8-byte records */
  ck_assert_uint_eq(stats.batches_failed, 0);
  ck_assert_int_eq(stats.last_status, 202);
  jbuf out;
  jbuf_init(&out, 1 << 24);
  ck_assert_int_eq(export_session(st.s, "s-online", "json", &out), 0);
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(ingest_parse(out.data, out.len - 1, &lim, &b, detail, sizeof detail), 0);
  ck_assert_uint_eq(b->ntasks, 2000);
  ck_assert_uint_eq(b->nsteps, 2000);
  ck_assert_int_eq(b->has_end, 1);
  ingest_free(b);
  jbuf_free(&out);

  /* gzip (the default to a server elsewhere than loopback): 16 KiB of records, ~100 KB of JSON a batch */
  ck_assert_int_eq(send_session(url, "tok-123", "s-gzip", 3000, 16384, 1, &stats), LSC_OK);
  ck_assert_uint_ge(stats.batches_sent, 2);
  ck_assert_uint_eq(stats.batches_failed, 0);
  ck_assert_uint_eq(stats.dropped, 0);
  jbuf_init(&out, 1 << 26);
  ck_assert_int_eq(export_session(st.s, "s-gzip", "json", &out), 0);
  ck_assert_int_eq(ingest_parse(out.data, out.len - 1, &lim, &b, detail, sizeof detail), 0);
  ck_assert_uint_eq(b->ntasks, 3000);
  ck_assert_uint_eq(b->nsteps, 3000);
  ingest_free(b);
  jbuf_free(&out);

  ck_assert_int_eq(send_session(url, "wrong", "s-refused", 5, 4096, 0, &stats), LSC_ELOST);
  ck_assert_uint_ge(stats.batches_failed, 1);
  ck_assert_uint_eq(stats.batches_sent, 0);
  ck_assert_uint_eq(stats.retries, 0);
  ck_assert_int_eq(stats.last_status, 401);
  jbuf_init(&out, 1 << 20);
  ck_assert_int_eq(export_session(st.s, "s-refused", "json", &out), LS_ENOTFOUND);
  jbuf_free(&out);
  http_stop(h, 5000);
  store_fixture_down(&st);
}
END_TEST

/* n closed sessions of ntasks tasks (a task and a step each) through a collector made with cfg,
 * named prefix (n == 1) or prefix-0, prefix-1, ...; flush's answer, stats in *st. parked: first a session of its own (prefix-warm-up) is sent
 * and flushed, so the sender is asleep in its wait (a flush returns only once the sender, done
 * sending, has released the mutex by waiting) before the n sessions are written: all of them are
 * then ready together at the final flush, whatever the speed of the sender's thread (under
 * valgrind it started late and sent the first sessions while the rest were being written). */
/* The name send_sessions gives every task (a test sets a long one for large bodies). */
static ls_str send_name = S("Task-x");

static int send_sessions(const ls_config *cfg, const char *prefix, int n, int ntasks, int parked, ls_stats *st)
{
  ls_collector *c = NULL;
  ck_assert_int_eq(ls_collector_new(cfg, &c), LSC_OK);
  if (parked) {
    char id[64];
    snprintf(id, sizeof id, "%s-warm-up", prefix);
    ls_session *s = NULL;
    ck_assert_int_eq(ls_session_open(c, id, "{\"name\":\"warm-up\"}", &s), LSC_OK);
    ck_assert_int_eq(ls_session_close(s, 1), LSC_OK);
    ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(30000)), LSC_OK);
  }
  for(int k = 0; k < n; k++) {
    char id[64];
    snprintf(id, sizeof id, n == 1 ? "%s" : "%s-%d", prefix, k);
    ls_session *s = NULL;
    ck_assert_int_eq(ls_session_open(c, id, "{\"name\":\"online\"}", &s), LSC_OK);
    for(int i = 1; i <= ntasks; i++) {
      ls_event t = {.kind = LS_K_TASK, .id = (uint64_t)i, .t = (uint64_t)i * 10, .name = send_name, .coro = S("m.c")};
      ck_assert_int_eq(ls_emit(s, &t), LSC_OK);
      ls_event sp = {.kind = LS_K_STEP, .id = (uint64_t)i, .t = (uint64_t)i * 10 + 1, .d = 5};
      ck_assert_int_eq(ls_emit(s, &sp), LSC_OK);
    }
    ck_assert_int_eq(ls_session_close(s, (uint64_t)ntasks * 10 + 100), LSC_OK);
  }
  int rc = ls_collector_flush(c, check_wait_ms(30000));
  ls_collector_stats(c, st);
  ls_collector_free(c, 1000);
  return rc;
}

/* Every one of n sessions stored whole: ntasks tasks and steps, ended. */
static void sessions_stored(store *s, const char *prefix, int n, int ntasks)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  for(int k = 0; k < n; k++) {
    char id[64], detail[256];
    snprintf(id, sizeof id, "%s-%d", prefix, k);
    jbuf out;
    jbuf_init(&out, 1 << 24);
    ck_assert_int_eq(export_session(s, id, "json", &out), 0);
    ingest_batch *b = NULL;
    ck_assert_int_eq(ingest_parse(out.data, out.len - 1, &lim, &b, detail, sizeof detail), 0);
    ck_assert_uint_eq(b->ntasks, (size_t)ntasks);
    ck_assert_uint_eq(b->nsteps, (size_t)ntasks);
    ck_assert_int_eq(b->has_end, 1);
    ingest_free(b);
    jbuf_free(&out);
  }
}

/* The sender (lssender.c) puts the sessions ready at one wake-up into one multi-batch POST; a body
 * the server refuses as too large (413 over --max-body, 1 MiB here) is sent again one batch per
 * POST, losing nothing. */
START_TEST(online_sender_posts_several_sessions_at_once)
{
  store_fixture st;
  membudget budget;
  char url[64];
  http_server *h = server_up(&st, &budget, "collector-many", NULL, url, sizeof url);
  ls_stats stats;
  /* the sender wakes only for the flush (a minute's interval) and is asleep before the sessions
   * are written (send_sessions' warm-up session, one POST of its own), so the sessions are ready
   * together: one POST, and one more for a spurious wake-up of the sender's wait */
  ls_config cfg = {.url = url, .buffer_cap = 16 << 20, .flush_interval_ms = 60000, .timeout_ms = 5000};

  /* 30 sessions of ~5 KB of JSON: one POST, beside the warm-up session's */
  ck_assert_int_eq(send_sessions(&cfg, "s-few", 30, 50, 1, &stats), LSC_OK);
  ck_assert_uint_ge(stats.batches_sent, 31);
  ck_assert_uint_le(stats.posts_sent, 3);
  ck_assert_uint_eq(stats.split_posts, 0);
  ck_assert_uint_eq(stats.batches_failed, 0);
  ck_assert_uint_eq(stats.dropped, 0);
  sessions_stored(st.s, "s-few", 30, 50);

  /* the server's answers said it takes the binary record form: every POST after the first went so */
  ck_assert_uint_ge(stats.records_posts, 1);
  ck_assert_uint_eq(stats.records_refused, 0);

  /* 40 sessions of ~300 KB (1000 tasks named with 290 bytes each): a body over 1 MiB is refused
   * (413), then each of its batches goes alone (in the binary form: behind its magic, a copy) */
  static char long_name[291];
  memset(long_name, 'n', sizeof long_name - 1);
  send_name = (ls_str){long_name, sizeof long_name - 1, 0};
  ck_assert_int_eq(send_sessions(&cfg, "s-big", 40, 1000, 1, &stats), LSC_OK);
  send_name = S("Task-x");
  ck_assert_uint_ge(stats.records_posts, 11);
  ck_assert_uint_ge(stats.split_posts, 1);
  ck_assert_int_eq(stats.multi_refused, 0); /* too large is not "an older server" */
  ck_assert_uint_ge(stats.batches_sent, 40);
  ck_assert_uint_ge(stats.posts_sent, 11); /* at least a refused mebibyte's batches, alone */
  ck_assert_uint_le(stats.posts_sent, stats.batches_sent);
  ck_assert_uint_eq(stats.batches_failed, 0);
  ck_assert_uint_eq(stats.dropped, 0);
  sessions_stored(st.s, "s-big", 40, 1000);
  http_stop(h, 5000);
  store_fixture_down(&st);
}
END_TEST

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* While sessions keep closing (a web app's requests, thousands a second here) POSTs start at
 * least flush_interval_ms / 4 apart, however fast the server answers: unpaced, the sessions that
 * closed during one POST went out at once in the next (142 POSTs in 400 ms against this
 * in-process server; paced, 5). The bound is by the clock the pacing keeps, so a loaded machine only
 * lengthens the run; a flush still sends at once. */
START_TEST(online_sender_paces_posts_while_sessions_keep_closing)
{
  store_fixture st;
  membudget budget;
  char url[64];
  http_server *h = server_up(&st, &budget, "collector-paced", NULL, url, sizeof url);
  ls_config cfg = {.url = url, .buffer_cap = 16 << 20, .flush_interval_ms = 200, .timeout_ms = 5000};
  ls_collector *c = NULL;
  ck_assert_int_eq(ls_collector_new(&cfg, &c), LSC_OK);
  double t0 = now_ms();
  int n = 0;
  while (now_ms() - t0 < 400) {
    char id[64];
    snprintf(id, sizeof id, "s-paced-%d", n++);
    ls_session *s = NULL;
    ck_assert_int_eq(ls_session_open(c, id, "{\"name\":\"paced\"}", &s), LSC_OK);
    ls_event t = {.kind = LS_K_TASK, .id = 1, .t = 10, .name = S("Task-1"), .coro = S("m.c")};
    ck_assert_int_eq(ls_emit(s, &t), LSC_OK);
    ck_assert_int_eq(ls_session_close(s, 100), LSC_OK);
    nanosleep(&(struct timespec){0, 100000}, NULL);
  }
  double ran = now_ms() - t0;
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(30000)), LSC_OK);
  ls_stats stats;
  ls_collector_stats(c, &stats);
  ls_collector_free(c, 1000);
  ck_assert_uint_ge(stats.batches_sent, (uint64_t)n); /* a session may go in two batches */
  ck_assert_uint_eq(stats.batches_failed, 0);
  ck_assert_uint_eq(stats.dropped, 0);
  /* one POST a 50 ms at most while the sessions came, the first, and the flush's */
  ck_assert_msg(stats.posts_sent <= (uint64_t)(ran / 50) + 2, "%llu POSTs for %d sessions in %.0f ms",
                (unsigned long long)stats.posts_sent, n, ran);
  http_stop(h, 5000);
  store_fixture_down(&st);
}
END_TEST

/* The writer appends without the mutex while the sender ships what was published so far (it wakes
 * every millisecond, so it takes the current chunk's prefix again and again while it grows): every
 * event must arrive exactly once and in order, and once all is shipped the store holds no bytes. */
START_TEST(lock_free_writer_and_sender_lose_and_repeat_nothing)
{
  char sink[256];
  ls_collector *c = sink_collector(sink, "lsrace", 4 << 20, 1, 2048);
  ls_session *s = NULL;
  ck_assert_int_eq(ls_session_open(c, "s-race-1", "{}", &s), LSC_OK);
  const uint64_t nsteps = 60000;
  for(uint64_t i = 1; i <= nsteps; i++) {
    ls_event st = {.kind = LS_K_STEP, .id = i, .t = i * 10, .d = 5};
    ck_assert_int_eq(ls_emit(s, &st), LSC_OK);
    if(i % 5000 == 0) nanosleep(&(struct timespec){0, 2000000}, NULL); /* let the sender catch up mid-chunk */
  }
  ck_assert_int_eq(ls_session_close(s, nsteps * 10 + 10), LSC_OK);
  ck_assert_int_eq(ls_collector_flush(c, check_wait_ms(20000)), LSC_OK);
  ls_stats st;
  ls_collector_stats(c, &st);
  ck_assert_uint_eq(st.dropped, 0);
  ck_assert_uint_eq(st.events, nsteps + 1);
  ck_assert_uint_eq(st.bytes_used, 0);  /* the closed session's last chunk went too */
  ck_assert_uint_eq(st.sessions, 0);
  ck_assert_uint_ge(st.batches_saved, 2);
  ls_collector_free(c, 1000);

  FILE *f = fopen(sink, "rb");
  ck_assert_ptr_nonnull(f);
  char *line = NULL;
  size_t cap = 0;
  uint64_t next = 1;
  int ended = 0;
  while(getline(&line, &cap, f) > 0) {
    static const char key[] = "{\"k\":\"step\",\"id\":";
    for(const char *p = strstr(line, key); p; p = strstr(p + 1, key)) {
      uint64_t id = strtoull(p + sizeof key - 1, NULL, 10);
      ck_assert_msg(id == next, "step %llu arrived where %llu was due", (unsigned long long)id, (unsigned long long)next);
      next++;
    }
    ended |= strstr(line, "{\"k\":\"end\"") != NULL;
  }
  free(line);
  fclose(f);
  unlink(sink);
  ck_assert_uint_eq(next, nsteps + 1);
  ck_assert_int_eq(ended, 1);
}
END_TEST

static Suite *collector_sender_suite(void)
{
  Suite *s = suite_create("collector_sender");
  TCase *c = tcase_create("sender");
  tcase_set_timeout(c, 60);
  tcase_add_test(c, offline_sink_batches_parse_on_the_server);
  tcase_add_test(c, route_goes_out_in_the_meta);
  tcase_add_test(c, named_session_meta_is_written_by_the_sender);
  tcase_add_test(c, straight_writers_store_what_ls_emit_stores);
  tcase_add_test(c, online_sender_against_the_real_server);
  tcase_add_test(c, online_sender_posts_several_sessions_at_once);
  tcase_add_test(c, online_sender_paces_posts_while_sessions_keep_closing);
  tcase_add_test(c, lock_free_writer_and_sender_lose_and_repeat_nothing);
  tcase_add_test(c, sessions_are_reused_and_allocate_nothing);
  tcase_add_test(c, labels_replaced_while_the_sender_reads_them);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(collector_sender_suite());
}
