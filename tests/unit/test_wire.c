/* test_wire.c — the binary record form of an ingest body (docs/api.md, "Binary record bodies"),
 * end to end in one process: the collector's encoder (collector/src/lsencode.c) writes a stream of
 * records both ways, as JSON and in the binary form, and the server's two readers (server/ingest.c,
 * server/ingest_records.c) must give the same rows, field for field, text that is not UTF-8 or
 * holds a NUL cleaned alike. Then the server's reader alone
 * on bodies made by hand: every error names its place as the JSON reader would, and no cut or
 * changed byte of a valid body crashes it or half-stores anything. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "collector_fixture.h"
#include "ingest.h"
#include "lscore.h"

static const char META[] = "{\"name\":\"GET /x\",\"pid\":12,\"loop\":2,\"started_unix_ns\":\"1700000000000000000\","
                           "\"service\":\"svc\",\"route\":\"GET /x\"}";

/* Every kind of record, every optional part: what both forms must carry alike. */
static size_t write_stream(unsigned char *rec, size_t cap, ls_intern *strings)
{
  ls_wstate ws = {.t = 0, .strings = strings};
  size_t n = 0;
  ls_frame fr[2] = {{.file = S("/srv/app/views.py"), .line = 7, .func = S("page"), .src = S("time.sleep(1)")},
                    {.file = S("/srv/app/db.py"), .line = 9, .func = S("fetch"), .src = S("x()\xc3")}};
  ls_event evs[] = {
    {.kind = LS_K_TASK, .id = 1, .t = 1000, .name = S("Task-3"), .coro = S("app.main")},
    {.kind = LS_K_TASK, .id = 2, .parent = 1, .t = 900, .name = S("worker \xe2\x9c\x93"), .coro = S("app.fetch")},
    {.kind = LS_K_TASK, .id = 3, .parent = 1, .t = 950, .coro = S("app.fetch")}, /* no name: "" */
    {.kind = LS_K_TASK, .id = 5, .parent = 1, .t = 960, .name = S("a\0b\xff"), .coro = S("app.fetch")}, /* cleaned */
    {.kind = LS_K_STEP, .id = 1, .t = 1001, .d = 30},
    {.kind = LS_K_AWAIT, .id = 2, .t = 1100, .d = 45000000, .what = S("sleep"), .file = S("/srv/app/db.py"),
     .line = 23, .func = S("fetch")},
    {.kind = LS_K_AWAIT, .id = 2, .t = 1200, .d = 5, .what = S("sleep"), .file = S("/srv/app/db.py"), .line = -5,
     .func = S("fetch")}, /* a line JSON cannot say: 0 in both */
    {.kind = LS_K_BLOCK, .id = 1, .t = 400, .d = 50, .frames = fr, .nframes = 2, .has_stack_t = 1, .stack_t = 20},
    {.kind = LS_K_BLOCK, .id = 1, .t = 500, .d = 50, .frames = fr, .nframes = 1, .has_stack_t = 1,
     .stack_t = 90}, /* past d: said as d */
    {.kind = LS_K_BLOCK, .t = 600, .d = 70, .elsewhere = 1, .from_session = S("s-ab-1"), .from_task = 3,
     .frames = fr, .nframes = 2},
    {.kind = LS_K_BLOCK, .t = 700, .d = 70, .elsewhere = 1}, /* from no session, no stack */
    {.kind = LS_K_LAG, .t = 800, .d = 123456},
    {.kind = LS_K_LAG, .t = (uint64_t)1 << 60, .d = 0}, /* past 2^53: said as 2^53 - 1 */
    {.kind = LS_K_DONE, .id = 2, .t = 2000, .state = LS_S_OK},
    {.kind = LS_K_DONE, .id = 3, .t = 2001, .state = LS_S_CANCELLED, .exc = S("ignored: not an error")},
    {.kind = LS_K_DONE, .id = 1, .t = 2002, .state = LS_S_ERROR, .exc = S("ValueError: x"), .status = 500},
    {.kind = LS_K_DONE, .id = 5, .t = 2002, .state = LS_S_ERROR, .exc = S("caf\xe9")}, /* Latin-1: cleaned */
    {.kind = LS_K_DONE, .id = 4, .t = 2003, .state = LS_S_OK, .status = 42}, /* not a status: left out */
    {.kind = LS_K_END, .t = 2100},
  };
  for(size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
    ck_assert_uint_le(n + ls_record_bound(&evs[i]), cap);
    n += ls_record_write(rec + n, &evs[i], &ws);
  }
  return n;
}

/* One batch of the stream as JSON (plain, every string inline). */
static void json_batch(ls_buf *b, const char *id, const unsigned char *rec, size_t n, ls_intern *strings)
{
  ls_buf_puts(b, "{\"v\":1,\"batch\":\"");
  ls_buf_puts(b, id);
  ls_buf_puts(b, "\",\"session\":\"s-1\",\"meta\":");
  ls_buf_puts(b, META);
  ls_buf_puts(b, ",\"events\":[");
  int first = 1;
  ls_rstate rs = {.t = 0, .strings = strings};
  size_t used = 0, nev = 0;
  ck_assert_int_eq(ls_encode_records(b, &rs, rec, n, &first, 0, &used, &nev), LSC_OK);
  ck_assert_uint_eq(used, n);
  ls_buf_puts(b, ",{\"k\":\"drop\",\"n\":5}]}");
}

/* The same batch in the binary form, as the sender writes it: events first, then the header. */
static void wire_batch(ls_buf *b, const char *id, const unsigned char *rec, size_t n, ls_intern *strings,
                       ls_strtab *st)
{
  ls_buf ev;
  ls_buf_init(&ev, 1 << 20);
  ls_wirestate ws;
  ls_wire_begin(&ws);
  if(st)
    ls_strtab_begin(st);
  ls_rstate rs = {.t = 0, .strings = strings};
  size_t used = 0, nev = 0;
  ck_assert_int_eq(ls_encode_records_wire(&ev, &rs, st, &ws, rec, n, 0, &used, &nev), LSC_OK);
  ck_assert_uint_eq(used, n);
  ls_wire_drop(&ev, &ws, 5);
  ls_wire_str(b, id, strlen(id));
  ls_wire_str(b, "s-1", 3);
  ls_wire_str(b, META, strlen(META));
  if(st)
    ls_strtab_write_wire(b, st, strings);
  else
    ls_wire_v(b, 0);
  for(int i = 0; i < LS_WIRE_COUNTS; i++)
    ls_wire_v(b, ws.counts[i]);
  ls_buf_append(b, ev.data, ev.len);
  ck_assert(!ev.failed && !b->failed);
  ls_buf_free(&ev);
}

static void same_str(const char *a, const char *b, const char *what, size_t i)
{
  ck_assert_msg((!a && !b) || (a && b && !strcmp(a, b)), "%s[%zu]: \"%s\" against \"%s\"", what, i, a ? a : "(null)",
                b ? b : "(null)");
}

/* Every field of every row of two parsed batches. */
static void same_batch(const ingest_batch *a, const ingest_batch *b)
{
  same_str(a->batch, b->batch, "batch", 0);
  same_str(a->session, b->session, "session", 0);
  const ingest_meta *m = &a->meta, *w = &b->meta;
  ck_assert_int_eq(m->present, w->present);
  same_str(m->name, w->name, "meta.name", 0);
  same_str(m->service, w->service, "meta.service", 0);
  same_str(m->route, w->route, "meta.route", 0);
  same_str(m->started, w->started, "meta.started", 0);
  ck_assert(m->pid == w->pid && m->loop == w->loop && m->started_ns == w->started_ns);
  ck_assert_uint_eq(a->ntasks, b->ntasks);
  for(size_t i = 0; i < a->ntasks; i++) {
    const ingest_task *x = &a->tasks[i], *y = &b->tasks[i];
    ck_assert(x->id == y->id && x->parent == y->parent && x->t == y->t);
    same_str(x->name, y->name, "task.name", i);
    same_str(x->coro, y->coro, "task.coro", i);
  }
  ck_assert_uint_eq(a->nsteps, b->nsteps);
  for(size_t i = 0; i < a->nsteps; i++)
    ck_assert(a->steps[i].id == b->steps[i].id && a->steps[i].t == b->steps[i].t && a->steps[i].d == b->steps[i].d);
  ck_assert_uint_eq(a->nawaits, b->nawaits);
  for(size_t i = 0; i < a->nawaits; i++) {
    const ingest_await *x = &a->awaits[i], *y = &b->awaits[i];
    ck_assert(x->id == y->id && x->t == y->t && x->d == y->d && x->line == y->line);
    same_str(x->what, y->what, "await.what", i);
    same_str(x->file, y->file, "await.file", i);
    same_str(x->func, y->func, "await.func", i);
  }
  ck_assert_uint_eq(a->nblocks, b->nblocks);
  for(size_t i = 0; i < a->nblocks; i++) {
    const ingest_block *x = &a->blocks[i], *y = &b->blocks[i];
    ck_assert(x->id == y->id && x->t == y->t && x->d == y->d && x->line == y->line && x->stack_t == y->stack_t);
    ck_assert(x->elsewhere == y->elsewhere && x->from_task == y->from_task);
    same_str(x->from_session, y->from_session, "block.from_session", i);
    same_str(x->file, y->file, "block.file", i);
    same_str(x->func, y->func, "block.func", i);
    same_str(x->src, y->src, "block.src", i);
    ck_assert_uint_eq(x->stack_len, y->stack_len);
    ck_assert(!memcmp(a->stacks + x->stack_off, b->stacks + y->stack_off, x->stack_len));
  }
  ck_assert_uint_eq(a->nlags, b->nlags);
  for(size_t i = 0; i < a->nlags; i++)
    ck_assert(a->lags[i].t == b->lags[i].t && a->lags[i].d == b->lags[i].d);
  ck_assert_uint_eq(a->ndones, b->ndones);
  for(size_t i = 0; i < a->ndones; i++) {
    const ingest_done *x = &a->dones[i], *y = &b->dones[i];
    ck_assert(x->id == y->id && x->t == y->t && x->status == y->status);
    same_str(x->state, y->state, "done.state", i);
    same_str(x->exc, y->exc, "done.exc", i);
  }
  ck_assert(a->dropped == b->dropped && a->has_end == b->has_end && a->end_t == b->end_t);
  ck_assert(a->unknown == b->unknown && a->max_t == b->max_t && a->events == b->events);
  for(int k = 0; k < INGEST_NKINDS; k++)
    ck_assert(a->max_d[k] == b->max_d[k]);
}

static ingest_batch *parse(const ls_buf *b, int records)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *out = NULL;
  char detail[256];
  int rc = (records ? ingest_parse_records : ingest_parse)(b->data, b->len, &lim, &out, detail, sizeof detail);
  ck_assert_msg(rc == 0, "%s", detail);
  return out;
}

/* Two batches in one body each way (the second's times and table start afresh): the same rows. */
START_TEST(wire_reads_as_json_does)
{
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  unsigned char rec[8192];
  size_t n = write_stream(rec, sizeof rec, strings);
  ls_strtab st;
  ck_assert_int_eq(ls_strtab_init(&st), LSC_OK);
  for(int with_table = 0; with_table < 2; with_table++) {
    ls_buf json, wire;
    ls_buf_init(&json, 1 << 20);
    ls_buf_init(&wire, 1 << 20);
    ls_buf_puts(&json, "{\"v\":1,\"batches\":[");
    json_batch(&json, "b-1", rec, n, strings);
    ls_buf_puts(&json, ",");
    json_batch(&json, "b-2", rec, n, strings);
    ls_buf_puts(&json, "]}");
    ls_buf_puts(&wire, LS_WIRE_MAGIC);
    wire_batch(&wire, "b-1", rec, n, strings, with_table ? &st : NULL);
    wire_batch(&wire, "b-2", rec, n, strings, with_table ? &st : NULL);
    ingest_batch *a = parse(&json, 0), *b = parse(&wire, 1);
    ck_assert_uint_eq(ingest_count(b), 2);
    same_batch(a, b);
    same_batch(a->next, b->next);
    /* what the rows say, beyond agreeing */
    ck_assert_str_eq(b->tasks[0].name, "Task-3");
    ck_assert_str_eq(b->tasks[2].name, "");
    ck_assert_int_eq(b->awaits[1].line, 0);
    ck_assert_int_eq(b->blocks[1].stack_t, 50);
    ck_assert_str_eq(b->blocks[2].from_session, "s-ab-1");
    ck_assert_ptr_null(b->blocks[3].from_session);
    ck_assert(b->blocks[3].elsewhere);
    ck_assert_int_eq(b->lags[1].t, ((int64_t)1 << 53) - 1);
    ck_assert_ptr_null(b->dones[1].exc);
    ck_assert_str_eq(b->dones[2].exc, "ValueError: x");
    ck_assert_str_eq(b->dones[3].exc, "caf\xef\xbf\xbd");
    ck_assert_int_eq(b->dones[4].status, -1);
    ck_assert_str_eq(b->tasks[3].name, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
    ck_assert_str_eq(b->blocks[0].src, "x()\xef\xbf\xbd");
    ck_assert_int_eq(b->dropped, 5);
    ck_assert_str_eq(b->meta.route, "GET /x");
    if(with_table) /* a third of the JSON, or less */
      ck_assert_uint_lt(wire.len * 3, json.len);
    ingest_free(a);
    ingest_free(b);
    ls_buf_free(&json);
    ls_buf_free(&wire);
  }
  ls_strtab_free(&st);
  ls_intern_free(strings);
}
END_TEST

/* A hand-made body: the magic, one batch's header with the given table and counts, then events. */
typedef struct hand {
  ls_buf b;
} hand;

static void hand_begin(hand *h, const char *meta, const char *const *table, int ntable, const uint64_t counts[7])
{
  ls_buf_init(&h->b, 1 << 20);
  ls_buf_puts(&h->b, LS_WIRE_MAGIC);
  ls_wire_str(&h->b, "b-1", 3);
  ls_wire_str(&h->b, "s-1", 3);
  ls_wire_str(&h->b, meta, strlen(meta));
  ls_wire_v(&h->b, (uint64_t)ntable);
  for(int i = 0; i < ntable; i++) { /* raw: ls_wire_str would clean a bad one */
    ls_wire_v(&h->b, strlen(table[i]));
    ls_buf_append(&h->b, table[i], strlen(table[i]));
  }
  for(int i = 0; i < 7; i++)
    ls_wire_v(&h->b, counts[i]);
}

static void put_bytes(hand *h, const char *bytes, size_t n) { ls_buf_append(&h->b, bytes, n); }

/* The body is refused (400) and detail is exactly want. */
static void refused(hand *h, const char *want)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *out = (ingest_batch *)1;
  char detail[256];
  int rc = ingest_parse_records(h->b.data, h->b.len, &lim, &out, detail, sizeof detail);
  ck_assert_int_eq(rc, LS_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_str_eq(detail, want);
  ls_buf_free(&h->b);
}

#define STEPS1 ((const uint64_t[7]){0, 1, 0, 0, 0, 0, 0})
#define AWAITS1 ((const uint64_t[7]){0, 0, 1, 0, 0, 0, 0})

START_TEST(wire_errors_name_their_place)
{
  hand h;
  const char *tab[] = {"sleep"};
  /* not the form at all */
  ls_buf_init(&h.b, 64);
  ls_buf_puts(&h.b, "{\"v\":1}");
  refused(&h, "body: expected the binary record form, which begins with \"LSR1\"");
  ls_buf_init(&h.b, 64);
  ls_buf_puts(&h.b, "LSR1");
  refused(&h, "batches: expected at least one batch");
  /* a step: kind 2, id, dt, d */
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x02\x00\x02\x01", 4);
  refused(&h, "batches[0].events[0].id: expected a positive integer below 2^53");
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x02\x01\x02", 3);
  refused(&h, "batches[0].events[0].d: the body ends inside this value (byte 24)");
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x12\x01\x02\x01", 4);
  refused(&h, "batches[0].events[0].k: flags 0x10 are not defined for a step");
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x09\x01\x02\x01", 4);
  refused(&h, "batches[0].events[0].k: 9 is not a kind this server reads (1 to 8)");
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x05\x02\x01", 3); /* a lag where the counts said a step */
  refused(&h, "batches[0].events[0].k: more lag events than the batch's counts say (0)");
  hand_begin(&h, "", NULL, 0, STEPS1);
  put_bytes(&h, "\x02\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x01", 13);
  refused(&h, "batches[0].events[0].t: a number of more than 64 bits (byte 23)");
  hand_begin(&h, "", NULL, 0, ((const uint64_t[7]){0, 500, 0, 0, 0, 0, 0}));
  put_bytes(&h, "\x02\x01\x02\x01", 4);
  refused(&h, "batches[0].counts: 500 events, more than the body's 4 bytes left can hold");
  /* an await: kind 3, id, dt, d, line, what, file, func */
  hand_begin(&h, "", tab, 1, AWAITS1);
  put_bytes(&h, "\x03\x01\x02\x01\x07\x0b\x01\x01", 8);
  refused(&h, "batches[0].events[0].what: names strings[5], outside the batch's strings (0 to 0)");
  hand_begin(&h, "", NULL, 0, AWAITS1);
  put_bytes(&h, "\x03\x01\x02\x01\x07\x01", 6);
  refused(&h, "batches[0].events[0].what: names strings[0], but the batch has no strings");
  hand_begin(&h, "", tab, 1, AWAITS1);
  put_bytes(&h, "\x03\x01\x02\x01\x07\x01\x06" "a\0b" "\x01", 11);
  refused(&h, "batches[0].events[0].file: holds U+0000: no text may contain it");
  hand_begin(&h, "", tab, 1, AWAITS1);
  put_bytes(&h, "\x03\x01\x02\x01\x07\x01\x04" "\xc3\x28" "\x01", 10);
  refused(&h, "batches[0].events[0].file: not valid UTF-8");
  const char *bad_tab[] = {"ok", "\xed\xa0\x80"}; /* a surrogate */
  hand_begin(&h, "", bad_tab, 2, AWAITS1);
  refused(&h, "batches[0].strings[1]: not valid UTF-8");
  /* a done: kind 6, state in the flags */
  hand_begin(&h, "", NULL, 0, ((const uint64_t[7]){0, 0, 0, 0, 0, 1, 0}));
  put_bytes(&h, "\x36\x01\x02", 3);
  refused(&h, "batches[0].events[0].state: expected one of ok, cancelled, error");
  hand_begin(&h, "", NULL, 0, ((const uint64_t[7]){0, 0, 0, 0, 0, 1, 0}));
  put_bytes(&h, "\x46\x01\x02\x2a", 4);
  refused(&h, "batches[0].events[0].status: expected an integer in [100, 599]");
  hand_begin(&h, "", NULL, 0, ((const uint64_t[7]){0, 0, 0, 0, 0, 1, 0}));
  put_bytes(&h, "\x46\x01\x02\x80\x80\x80\x80\x80\x80\x80\x80\x10", 12); /* 2^60 */
  refused(&h, "batches[0].events[0].status: expected an integer in [100, 599]");
  /* the header */
  hand_begin(&h, "{\"pid\":-1}", NULL, 0, STEPS1);
  put_bytes(&h, "\x02\x01\x02\x01", 4);
  refused(&h, "batches[0].meta.pid: expected an integer in [0, 2^53)");
  hand_begin(&h, "{\"pid\":", NULL, 0, STEPS1);
  refused(&h, "batches[0].meta: not valid JSON (near byte 6 of meta)");
  hand_begin(&h, "", NULL, 0, ((const uint64_t[7]){0, 2, 0, 0, 0, 0, 0}));
  put_bytes(&h, "\x02\x01\x02\x01", 4);
  refused(&h, "batches[0].events[1]: the body ends before it (the counts say 2 events)");
  ls_buf_init(&h.b, 64);
  ls_buf_puts(&h.b, LS_WIRE_MAGIC);
  ls_wire_str(&h.b, "b 1", 3);
  refused(&h, "batches[0].batch: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  char long_id[130];
  memset(long_id, 'a', sizeof long_id);
  ls_buf_init(&h.b, 512);
  ls_buf_puts(&h.b, LS_WIRE_MAGIC);
  ls_wire_str(&h.b, long_id, 128); /* the longest id */
  ls_wire_str(&h.b, long_id, 129);
  refused(&h, "batches[0].session: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
}
END_TEST

/* Every cut of a valid two-batch body is refused, never half-read; every byte changed to each of a
 * few values parses or is refused with a place named, and what parses holds to ingest.h. (ASan and
 * valgrind runs of this suite check the reads stay in bounds.) */
START_TEST(wire_cuts_and_changes_never_crash)
{
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  unsigned char rec[8192];
  size_t n = write_stream(rec, sizeof rec, strings);
  ls_strtab st;
  ck_assert_int_eq(ls_strtab_init(&st), LSC_OK);
  ls_buf wire;
  ls_buf_init(&wire, 1 << 20);
  ls_buf_puts(&wire, LS_WIRE_MAGIC);
  wire_batch(&wire, "b-1", rec, n, strings, &st);
  wire_batch(&wire, "b-2", rec, n, strings, &st);
  ingest_limits lim;
  ingest_default_limits(&lim);
  char detail[256];
  ingest_batch *out;
  size_t full_events = 0;
  ck_assert_int_eq(ingest_parse_records(wire.data, wire.len, &lim, &out, detail, sizeof detail), 0);
  full_events = out->events + out->next->events;
  ingest_free(out);
  size_t batch_end = 0; /* where the first batch ends: a cut there is a whole body of one batch */
  for(size_t cut = 0; cut < wire.len; cut++) {
    int rc = ingest_parse_records(wire.data, cut, &lim, &out, detail, sizeof detail);
    if(rc == 0) {
      ck_assert_uint_eq(ingest_count(out), 1);
      ck_assert_uint_eq(out->events * 2, full_events);
      ck_assert(!batch_end);
      batch_end = cut;
      ingest_free(out);
      continue;
    }
    ck_assert_int_eq(rc, LS_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_msg(!strncmp(detail, "batches", 7) || !strncmp(detail, "body:", 5), "%zu: %s", cut, detail);
  }
  ck_assert_uint_gt(batch_end, 0);
  static const unsigned char values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
  for(size_t i = 4; i < wire.len; i++) {
    unsigned char keep = (unsigned char)wire.data[i];
    for(size_t v = 0; v < sizeof values; v++) {
      wire.data[i] = (char)values[v];
      int rc = ingest_parse_records(wire.data, wire.len, &lim, &out, detail, sizeof detail);
      if(rc == 0) {
        for(ingest_batch *b = out; b; b = b->next) {
          ck_assert(b->max_t >= 0 && b->max_t < ((int64_t)1 << 53));
          for(size_t k = 0; k < b->ntasks; k++)
            ck_assert(b->tasks[k].id >= 1 && b->tasks[k].name && b->tasks[k].coro);
          for(size_t k = 0; k < b->nawaits; k++)
            ck_assert(b->awaits[k].what && b->awaits[k].file && b->awaits[k].func);
        }
        ingest_free(out);
      }
      else {
        ck_assert_int_eq(rc, LS_EINVAL);
        ck_assert_msg(!strncmp(detail, "batches", 7), "%zu=%u: %s", i, values[v], detail);
      }
    }
    wire.data[i] = (char)keep;
  }
  ls_buf_free(&wire);
  ls_strtab_free(&st);
  ls_intern_free(strings);
}
END_TEST

/* The limits of ingest.h hold for the body as a whole, as they do for JSON. */
START_TEST(wire_limits)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  lim.max_events = 3;
  lim.max_batches = 2;
  char detail[256];
  ingest_batch *out;
  ls_buf b;
  ls_buf_init(&b, 1024);
  ls_buf_puts(&b, LS_WIRE_MAGIC);
  for(int i = 0; i < 2; i++) { /* two batches of two steps: four events in the body */
    ls_wire_str(&b, "b-1", 3);
    ls_wire_str(&b, "s-1", 3);
    ls_wire_v(&b, 0);
    ls_wire_v(&b, 0);
    for(int k = 0; k < 7; k++)
      ls_wire_v(&b, k == 1 ? 2 : 0);
    ls_buf_append(&b, "\x02\x01\x02\x01\x02\x01\x02\x01", 8);
  }
  ck_assert_int_eq(ingest_parse_records(b.data, b.len, &lim, &out, detail, sizeof detail), LS_EINVAL);
  ck_assert_str_eq(detail, "batches[1].events: more than 3 events in one body (its batches together)");
  lim.max_events = 4;
  ck_assert_int_eq(ingest_parse_records(b.data, b.len, &lim, &out, detail, sizeof detail), 0);
  ck_assert_uint_eq(ingest_count(out), 2);
  ck_assert_int_eq(out->next->steps[1].t, 2); /* times start afresh in each batch */
  ingest_free(out);
  lim.max_batches = 1;
  ck_assert_int_eq(ingest_parse_records(b.data, b.len, &lim, &out, detail, sizeof detail), LS_EINVAL);
  ck_assert_str_eq(detail, "batches: more than 1 batches in one body");
  ls_buf_free(&b);
}
END_TEST

static Suite *wire_suite(void)
{
  Suite *s = suite_create("wire");
  TCase *c = tcase_create("wire");
  tcase_set_timeout(c, 120);
  tcase_add_test(c, wire_reads_as_json_does);
  tcase_add_test(c, wire_errors_name_their_place);
  tcase_add_test(c, wire_cuts_and_changes_never_crash);
  tcase_add_test(c, wire_limits);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(wire_suite());
}
