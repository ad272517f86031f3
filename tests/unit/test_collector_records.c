/* test_collector_records.c — the collector's C core (collector/src) on its own, without Python:
 * JSON string escaping and the UTF-8 table through the encoder and the server's parser, bearer-token
 * rules, result-code names, source lines for block stacks, records -> JSON events, the string table. */
#include <check.h>
#include <pthread.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_run.h"
#include "collector_fixture.h"
#include "ingest.h"
#include "lscore.h"
#include "utf8.h"
#include "utf8_cases.h"

/* ---------------------------------------------------------------- ls_buf */

/* The buffer itself (ceiling, failure codes, integers) is common/dynbuf.c's: tests/unit/test_common.c. */

static void jstr_is(const char *in, size_t n, const char *want)
{
  ls_buf b;
  ls_buf_init(&b, 1 << 10);
  ls_buf_jstr(&b, in, n);
  ck_assert_int_eq(b.failed, 0);
  ck_assert_str_eq(b.data, want);
  ls_buf_free(&b);
}

START_TEST(jstr_escapes_and_replaces_invalid_utf8)
{
  jstr_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
  jstr_is("\n\t\r\x01\x1f", 5, "\"\\n\\t\\r\\u0001\\u001f\"");
  jstr_is("nul\0in", 6, "\"nul\xEF\xBF\xBDin\""); /* the server refuses U+0000 in any text */
  jstr_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
  /* each invalid byte becomes U+FFFD: a lone continuation, an overlong, a surrogate, a cut
   * sequence, > U+10FFFF; what the server then receives is valid UTF-8 */
  jstr_is("\x80", 1, "\"\xef\xbf\xbd\"");
  jstr_is("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
  jstr_is("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
  jstr_is("ab\xe2\x82", 4, "\"ab\xef\xbf\xbd\xef\xbf\xbd\"");
  jstr_is("\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}
END_TEST

/* Whatever the bytes, the escaped string is valid UTF-8 by the server's own validator. */
START_TEST(jstr_output_always_passes_the_servers_utf8_check)
{
  uint64_t x = 0x9E3779B97F4A7C15u;
  for(int it = 0; it < 20000; it++) {
    unsigned char in[16];
    size_t n = 1 + (size_t)(it % 16);
    for(size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      in[i] = (unsigned char)(x % 3 ? 0x80 | (x >> 8 & 0x7f) : x >> 16);
    }
    ls_buf b;
    ls_buf_init(&b, 1 << 10);
    ls_buf_jstr(&b, (const char *)in, n);
    ck_assert_int_eq(utf8_valid(b.data, b.len), 1);
    ls_buf_free(&b);
  }
}
END_TEST

/* One batch whose meta name is the n bytes at s, as they are (raw) or as the collector's
 * encoder writes a string (escaped); what the server's parser answers. */
static int server_verdict(const unsigned char *s, size_t n, int escaped, char *name_out, size_t cap,
                          char *detail, size_t dlen)
{
  ls_buf body;
  ls_buf_init(&body, 1 << 12);
  ls_buf_puts(&body, "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"meta\":{\"name\":");
  if(escaped)
    ls_buf_jstr(&body, (const char *)s, n);
  else {
    ls_buf_puts(&body, "\"");
    ls_buf_append(&body, s, n);
    ls_buf_puts(&body, "\"");
  }
  ls_buf_puts(&body, "},\"events\":[]}");
  ck_assert_int_eq(body.failed, 0);
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  detail[0] = '\0';
  int rc = ingest_parse(body.data, body.len, &lim, &b, detail, dlen);
  if(!rc)
    snprintf(name_out, cap, "%s", b->meta.name ? b->meta.name : "");
  ingest_free(b);
  ls_buf_free(&body);
  return rc;
}

/* The table of tests/data/utf8_cases.txt through both halves of the contract, which compile the
 * same common/utf8.c: (1) the server refuses a raw string exactly when the table says it is not
 * UTF-8, naming the reason; (2) whatever the bytes, the collector's encoding of them is accepted,
 * and a valid string arrives unchanged. */
START_TEST(collector_and_server_agree_on_the_table)
{
  static utf8_case cases[128];
  size_t n = utf8_cases_load(cases, 128);
  for(size_t i = 0; i < n; i++) {
    const utf8_case *c = &cases[i];
    char name[64], detail[256];
    if(c->bytes[0] >= 0x20) { /* raw control bytes are not JSON at all: (1) skips them */
      int rc = server_verdict(c->bytes, c->n, 0, name, sizeof name, detail, sizeof detail);
      ck_assert_msg((rc == 0) == c->valid, "server says %d (%s) on raw %s", rc, detail, c->what);
      if(!c->valid)
        ck_assert_msg(strstr(detail, "meta.name: not valid UTF-8") != NULL, "detail %s", detail);
    }
    int rc = server_verdict(c->bytes, c->n, 1, name, sizeof name, detail, sizeof detail);
    ck_assert_msg(rc == 0, "server refuses the collector's encoding of %s: %s", c->what, detail);
    ck_assert_msg(utf8_valid(name, strlen(name)), "%s", c->what);
    if(c->valid && c->bytes[0] != 0)
      ck_assert_msg(strlen(name) == c->n && memcmp(name, c->bytes, c->n) == 0, "changed: %s", c->what);
    else if(!c->valid)
      ck_assert_msg(strstr(name, "\xEF\xBF\xBD") != NULL, "not replaced: %s", c->what);
  }
}
END_TEST

/* ---------------------------------------------------------------- tokens, codes */

START_TEST(token_rules)
{
  ck_assert_int_eq(ls_token_valid(NULL), 1);
  ck_assert_int_eq(ls_token_valid(""), 1);
  ck_assert_int_eq(ls_token_valid("s3cret-Token_~.+/="), 1);
  ck_assert_int_eq(ls_token_valid("has space"), 0);
  ck_assert_int_eq(ls_token_valid("line\nbreak"), 0);
  ck_assert_int_eq(ls_token_valid("caf\xc3\xa9"), 0);
  char big[LS_TOKEN_MAX + 2];
  memset(big, 'a', sizeof big);
  big[LS_TOKEN_MAX] = '\0';
  ck_assert_int_eq(ls_token_valid(big), 1);
  big[LS_TOKEN_MAX] = 'a';
  big[LS_TOKEN_MAX + 1] = '\0';
  ck_assert_int_eq(ls_token_valid(big), 0);
}
END_TEST

START_TEST(result_codes_have_distinct_names)
{
  const int codes[] = {LSC_OK, LSC_ENOMEM, LSC_EINVAL, LSC_EFULL, LSC_ECLOSED, LSC_ETIMEDOUT, LSC_ESYS, LSC_ELOST};
  const size_t n = sizeof codes / sizeof codes[0];
  for(size_t i = 0; i < n; i++) {
    ck_assert_ptr_nonnull(lsc_strerror(codes[i]));
    for(size_t j = 0; j < i; j++)
      ck_assert_str_ne(lsc_strerror(codes[i]), lsc_strerror(codes[j]));
  }
  ck_assert_ptr_nonnull(lsc_strerror(-999));
}
END_TEST

/* ---------------------------------------------------------------- source lines */

static char src_path[256];

static void write_src(const char *text, size_t n)
{
  snprintf(src_path, sizeof src_path, "%s/lssrc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  int fd = mkstemp(src_path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
  close(fd);
}

static const char *line_of(int line, size_t cap)
{
  static char out[4096];
  size_t n = ls_src_line(src_path, strlen(src_path), line, out, cap);
  ck_assert_uint_eq(n, strlen(out));
  return out;
}

START_TEST(src_lines)
{
  const char text[] = "first\n    time.sleep(0.15)  \r\n\n\tlast without newline";
  write_src(text, sizeof text - 1);
  ck_assert_str_eq(line_of(1, 4096), "first");
  ck_assert_str_eq(line_of(2, 4096), "time.sleep(0.15)"); /* trimmed, CR included */
  ck_assert_str_eq(line_of(3, 4096), "");
  ck_assert_str_eq(line_of(4, 4096), "last without newline");
  ck_assert_str_eq(line_of(5, 4096), "");  /* past the end */
  ck_assert_str_eq(line_of(0, 4096), "");  /* lines are 1-based */
  ck_assert_str_eq(line_of(-3, 4096), "");
  ck_assert_str_eq(line_of(2, 5), "time");  /* cut to the buffer, NUL-terminated */
  unlink(src_path);
  char out[64] = "x";
  ck_assert_uint_eq(ls_src_line(src_path, strlen(src_path), 1, out, sizeof out), 0); /* gone */
  ck_assert_str_eq(out, "");
  ck_assert_uint_eq(ls_src_line("<stdin>", 7, 1, out, sizeof out), 0);                 /* not a file */
  ck_assert_uint_eq(ls_src_line("a\0b", 3, 1, out, sizeof out), 0);                    /* NUL in path */
}
END_TEST

/* A line beyond the first 16 kB block: the block-wise reader carries lines across blocks. */
START_TEST(src_line_across_blocks)
{
  size_t n = 40000;
  char *text = malloc(n + 64);
  ck_assert_ptr_nonnull(text);
  size_t len = 0;
  int lines = 0;
  while(len < n) {
    lines++;
    len += (size_t)sprintf(text + len, "line %05d %s\n", lines, lines % 7 ? "" : "padding padding padding");
  }
  write_src(text, len);
  free(text);
  for(int l = 1; l <= lines; l += 97) {
    char want[64];
    snprintf(want, sizeof want, "line %05d%s", l, l % 7 ? "" : " padding padding padding");
    ck_assert_str_eq(line_of(l, 4096), want);
  }
  unlink(src_path);
}
END_TEST

/* ---------------------------------------------------------------- records -> JSON */

/* ev's record written and encoded again, through the string table strings (NULL: none); the
 * record's size into *size if asked. */
static cJSON *encode_with(const ls_event *ev, ls_intern *strings, size_t *size)
{
  size_t bound = ls_record_bound(ev);
  unsigned char *rec = malloc(bound);
  ck_assert_ptr_nonnull(rec);
  ls_wstate ws = {.t = 0, .strings = strings};
  size_t n = ls_record_write(rec, ev, &ws);
  ck_assert_uint_le(n, bound);
  ck_assert_uint_eq(ws.t, ev->t);
  if(size) *size = n;
  ls_buf b;
  ls_buf_init(&b, 1 << 20);
  ls_buf_puts(&b, "[");
  int first = 1;
  ls_rstate rs = {.t = 0, .strings = strings};
  size_t used = 0, nev = 0;
  ck_assert_int_eq(ls_encode_records(&b, &rs, rec, n, &first, 0, &used, &nev), LSC_OK);
  ck_assert_uint_eq(used, n);
  ck_assert_uint_eq(nev, 1);
  ck_assert_uint_eq(rs.t, ev->t);
  ls_buf_puts(&b, "]");
  free(rec);
  cJSON *arr = cJSON_Parse(b.data);
  ck_assert_msg(arr && cJSON_GetArraySize(arr) == 1, "not one event: %s", b.data);
  ls_buf_free(&b);
  cJSON *ev0 = cJSON_DetachItemFromArray(arr, 0);
  cJSON_Delete(arr);
  return ev0;
}

static cJSON *encode(const ls_event *ev) { return encode_with(ev, NULL, NULL); }


static double num(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
  return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  ck_assert_msg(cJSON_IsString(v), "no string %s", k);
  return v->valuestring;
}

START_TEST(records_round_trip_every_kind)
{
  ls_event t = {.kind = LS_K_TASK, .id = 7, .parent = 3, .t = 1000, .name = S("Task-7"), .coro = S("app.fetch")};
  cJSON *j = encode(&t);
  ck_assert_str_eq(str(j, "k"), "task");
  ck_assert(num(j, "id") == 7 && num(j, "parent") == 3 && num(j, "t") == 1000);
  ck_assert_str_eq(str(j, "name"), "Task-7");
  ck_assert_str_eq(str(j, "coro"), "app.fetch");
  cJSON_Delete(j);

  ls_event a = {.kind = LS_K_AWAIT, .id = 7, .t = 5, .d = 45000000, .what = S("sleep"),
                .file = S("app/db.py"), .line = 23, .func = S("fetch")};
  j = encode(&a);
  ck_assert_str_eq(str(j, "what"), "sleep");
  ck_assert(num(j, "line") == 23 && num(j, "d") == 45000000);
  cJSON_Delete(j);

  ls_frame frames[2] = {{S("app/main.py"), S("handler"), S("await render()"), 10},
                        {S("app/views.py"), S("render"), S("time.sleep(0.15)"), 45}};
  ls_event b = {.kind = LS_K_BLOCK, .id = 7, .t = 50, .d = 150000000, .frames = frames, .nframes = 2};
  j = encode(&b);
  const cJSON *stack = cJSON_GetObjectItemCaseSensitive(j, "stack");
  ck_assert_int_eq(cJSON_GetArraySize(stack), 2);
  ck_assert_str_eq(str(cJSON_GetArrayItem(stack, 1), "src"), "time.sleep(0.15)");
  ck_assert(num(cJSON_GetArrayItem(stack, 1), "line") == 45);
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "from_session")); /* an own block */
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "stack_t")); /* not said: unknown */
  cJSON_Delete(j);
  /* when the stack was taken, and with a cause too (both optional parts of the record) */
  b.has_stack_t = 1;
  b.stack_t = 50212000;
  j = encode(&b);
  ck_assert(num(j, "stack_t") == 50212000);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "stack")), 2);
  cJSON_Delete(j);
  b.stack_t = 200000000; /* past d (no collector path makes it): said as d, as the server requires */
  b.elsewhere = 1;
  b.from_session = S("s-ab-1");
  b.from_task = 3;
  j = encode(&b);
  ck_assert(num(j, "stack_t") == 150000000);
  ck_assert_str_eq(str(j, "from_session"), "s-ab-1");
  ck_assert(num(j, "from_task") == 3);
  cJSON_Delete(j);

  /* from elsewhere: the causing session and task, or null and no task; no id of this session */
  ls_event e = {.kind = LS_K_BLOCK, .t = 50, .d = 150000000, .frames = frames, .nframes = 2,
                .elsewhere = 1, .from_session = S("s-ab-1"), .from_task = 3};
  j = encode(&e);
  ck_assert_str_eq(str(j, "from_session"), "s-ab-1");
  ck_assert(num(j, "from_task") == 3);
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "id"));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "stack")), 2);
  cJSON_Delete(j);
  ls_event n = {.kind = LS_K_BLOCK, .t = 50, .d = 150000000, .elsewhere = 1};
  j = encode(&n);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "from_session")));
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "from_task"));
  cJSON_Delete(j);

  ls_event d = {.kind = LS_K_DONE, .id = 7, .t = 99, .state = LS_S_ERROR, .exc = S("ValueError: x"), .status = 500};
  j = encode(&d);
  ck_assert_str_eq(str(j, "state"), "error");
  ck_assert_str_eq(str(j, "exc"), "ValueError: x");
  ck_assert(num(j, "status") == 500);
  cJSON_Delete(j);

  /* numbers at each varint length's edges come back as they went in */
  static const uint64_t edges[] = {0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456,
                                   (uint64_t)1 << 35, ((uint64_t)1 << 53) - 1};
  for(size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
    ls_event e1 = {.kind = LS_K_STEP, .id = edges[i] + 1, .t = edges[i], .d = edges[i]};
    j = encode(&e1);
    ck_assert(num(j, "id") == (double)(edges[i] + 1) && num(j, "t") == (double)edges[i] &&
              num(j, "d") == (double)edges[i]);
    cJSON_Delete(j);
  }

  /* times past 2^53 are clamped into the contract's range */
  ls_event l = {.kind = LS_K_LAG, .t = UINT64_MAX, .d = (uint64_t)1 << 60};
  j = encode(&l);
  ck_assert(num(j, "t") < 9007199254740992.0 && num(j, "d") < 9007199254740992.0);
  cJSON_Delete(j);
}
END_TEST

START_TEST(records_refuse_garbage)
{
  unsigned char junk[64];
  memset(junk, 0xAB, sizeof junk); /* kind 0xB: no such kind */
  ls_buf b;
  ls_buf_init(&b, 1 << 10);
  int first = 1;
  ls_rstate rs = {0};
  size_t used = 1, nev = 1;
  ck_assert_int_eq(ls_encode_records(&b, &rs, junk, sizeof junk, &first, 0, &used, &nev), LSC_EINVAL);
  ck_assert_uint_eq(used, 0);
  ck_assert_uint_eq(nev, 0);
  ck_assert_uint_eq(b.len, 0);
  /* a valid step cut short: every varint must end inside the bytes given */
  ls_event st = {.kind = LS_K_STEP, .id = 300, .t = 1u << 30, .d = 70000};
  unsigned char rec[64];
  ls_wstate ws = {0};
  size_t n = ls_record_write(rec, &st, &ws);
  for(size_t cut = 1; cut < n; cut++) {
    rs.t = 0;
    ck_assert_int_eq(ls_encode_records(&b, &rs, rec, cut, &first, 0, &used, &nev), LSC_EINVAL);
    ck_assert_uint_eq(used, 0);
  }
  ck_assert_uint_eq(b.len, 0); /* nothing of a malformed record is written */
  /* an await naming a table string the reader's table does not have */
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  ls_event a = {.kind = LS_K_AWAIT, .id = 1, .t = 5, .d = 6, .what = S("sleep"), .file = S("a.py"), .line = 3,
                .func = S("f")};
  ws = (ls_wstate){.strings = strings};
  n = ls_record_write(rec, &a, &ws);
  rs = (ls_rstate){0}; /* no table */
  ck_assert_int_eq(ls_encode_records(&b, &rs, rec, n, &first, 0, &used, &nev), LSC_EINVAL);
  ls_intern_free(strings);
  ls_buf_free(&b);
}
END_TEST

/* Strings the table holds travel as numbers: an await naming three known strings takes a few bytes
 * and its JSON is what it would be inline; a task's default name "Task-N" is stored as N (and a
 * name that only looks like one, e.g. "Task-007", stays as it was). */
START_TEST(records_are_compact_and_say_the_same)
{
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  ls_event a = {.kind = LS_K_AWAIT, .id = 123456, .t = 9000000000ull, .d = 45000000, .what = S("AsyncSession.execute"),
                .file = S("/srv/app/db/session_queries.py"), .line = 231, .func = S("fetch_user_by_email")};
  size_t inline_size = 0, table_size = 0;
  cJSON *j1 = encode_with(&a, NULL, &inline_size);
  cJSON *j2 = encode_with(&a, strings, &table_size);  /* adds the three strings */
  cJSON *j3 = encode_with(&a, strings, &table_size);  /* finds them */
  ck_assert_uint_eq(ls_intern_count(strings), 3);
  ck_assert(cJSON_Compare(j1, j2, 1) && cJSON_Compare(j1, j3, 1));
  ck_assert_str_eq(str(j3, "file"), "/srv/app/db/session_queries.py");
  ck_assert(num(j3, "line") == 231 && num(j3, "t") == 9000000000.0);
  ck_assert_uint_le(table_size, 20);
  ck_assert_uint_gt(inline_size, table_size + 60);
  cJSON_Delete(j1);
  cJSON_Delete(j2);
  cJSON_Delete(j3);

  ls_event st = {.kind = LS_K_STEP, .id = 123456, .t = 9000000000ull, .d = 52000};
  size_t step_size = 0;
  cJSON_Delete(encode_with(&st, strings, &step_size));
  ck_assert_uint_le(step_size, 13); /* the old fixed header took 48 */

  static const char *names[] = {"Task-7", "Task-0", "Task-18446744073709551615", "Task-007", "Task-", "Task-12a", "worker"};
  for(size_t i = 0; i < sizeof names / sizeof *names; i++) {
    ls_event t = {.kind = LS_K_TASK, .id = 7, .t = 1, .name = {names[i], strlen(names[i])}, .coro = S("app.fetch")};
    cJSON *j = encode_with(&t, strings, NULL);
    ck_assert_str_eq(str(j, "name"), names[i]);
    cJSON_Delete(j);
  }
  ls_intern_free(strings);
}
END_TEST

/* A string the writer knows the number of (ls_str.sid: the extension's code_info keeps them) is
 * written as that number without a lookup: the same bytes as a record that looked it up, the same
 * JSON; with no table (ws.strings NULL) the number is ignored and the bytes go inline. And the
 * collector hands out those numbers (ls_collector_string): one per distinct string, whatever its
 * address, 0 for what cannot be in the table. */
START_TEST(records_name_known_strings_by_number)
{
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  ls_str what = S("sleep"), file = S("/srv/app/db.py"), func = S("fetch");
  unsigned char looked[128], known[128], plain[128], plain_sid[128];
  ls_wstate w1 = {.t = 0, .strings = strings};
  size_t n1 = ls_record_write_await(looked, 7, 1000, 20, 42, what, file, func, &w1); /* adds the three */
  ck_assert_uint_eq(ls_intern_count(strings), 3);
  ls_str kw = what, kf = file, kn = func;
  kw.sid = (uint32_t)ls_intern_id(strings, what.p, what.n) + 1;
  kf.sid = (uint32_t)ls_intern_id(strings, file.p, file.n) + 1;
  kn.sid = (uint32_t)ls_intern_id(strings, func.p, func.n) + 1;
  ls_wstate w2 = {.t = 0, .strings = strings};
  size_t n2 = ls_record_write_await(known, 7, 1000, 20, 42, kw, kf, kn, &w2);
  ck_assert_uint_eq(n1, n2);
  ck_assert(memcmp(looked, known, n1) == 0);
  ck_assert_uint_eq(ls_intern_count(strings), 3);
  /* no table: inline, the number ignored */
  ls_wstate w3 = {.t = 0, .strings = NULL}, w4 = {.t = 0, .strings = NULL};
  size_t n3 = ls_record_write_await(plain, 7, 1000, 20, 42, what, file, func, &w3);
  size_t n4 = ls_record_write_await(plain_sid, 7, 1000, 20, 42, kw, kf, kn, &w4);
  ck_assert_uint_eq(n3, n4);
  ck_assert(memcmp(plain, plain_sid, n3) == 0);
  ck_assert_uint_gt(n3, n1 + 20);
  /* a task's coroutine named by number says the same */
  ls_event t = {.kind = LS_K_TASK, .id = 9, .t = 5, .name = S("worker"), .coro = S("app.fetch")};
  cJSON *j1 = encode_with(&t, strings, NULL);
  t.coro.sid = (uint32_t)ls_intern_id(strings, "app.fetch", 9) + 1;
  cJSON *j2 = encode_with(&t, strings, NULL);
  ck_assert(cJSON_Compare(j1, j2, 1));
  ck_assert_str_eq(str(j2, "coro"), "app.fetch");
  cJSON_Delete(j1);
  cJSON_Delete(j2);
  ls_intern_free(strings);

  ls_config cfg = {.url = "http://127.0.0.1:9", .offline = 1};
  ls_collector *c = NULL;
  ck_assert_int_eq(ls_collector_new(&cfg, &c), LSC_OK);
  char a[] = "handlers.py", b[] = "handlers.py";
  uint32_t sa = ls_collector_string(c, a, strlen(a));
  ck_assert_uint_gt(sa, 0);
  ck_assert_uint_eq(ls_collector_string(c, b, strlen(b)), sa); /* by the bytes, not the address */
  ck_assert_uint_ne(ls_collector_string(c, "other.py", 8), sa);
  char big[LS_INTERN_MAX_STR + 1];
  memset(big, 'x', sizeof big);
  ck_assert_uint_eq(ls_collector_string(c, big, sizeof big), 0); /* too long: always inline */
  ck_assert_uint_eq(ls_collector_string(c, "", 0), 0);
  ck_assert_uint_eq(ls_collector_string(NULL, "x", 1), 0);
  ls_collector_free(c, 0);
}
END_TEST

/* A batch's strings table (docs/api.md): the table strings of a record stream (coroutines, await
 * files, functions and what, frames' files and functions) are written as indices, each string once
 * in the batch's "strings"; the server's parser reads the batch as the same events written plain,
 * every string equal. A new batch numbers from 0 again, also when the batch counter wraps. */
START_TEST(records_encode_with_a_batch_strings_table)
{
  ls_intern *strings = NULL;
  ck_assert_int_eq(ls_intern_new(&strings), LSC_OK);
  unsigned char rec[8192];
  size_t n = 0;
  ls_wstate ws = {.t = 0, .strings = strings};
  static const char *files[3] = {"/srv/app/db.py", "/srv/app/views.py", "caf\xc3\xa9.py"};
  for(int i = 0; i < 30; i++) {
    ls_str f = {files[i % 3], strlen(files[i % 3]), 0};
    ls_event t = {.kind = LS_K_TASK, .id = (uint64_t)i + 1, .t = (uint64_t)i * 10, .name = S("Task-3"), .coro = S("app.fetch")};
    n += ls_record_write(rec + n, &t, &ws);
    n += ls_record_write_await(rec + n, (uint64_t)i + 1, (uint64_t)i * 10 + 5, 3, 40 + i % 2, S("sleep"), f, S("fetch"), &ws);
  }
  ls_frame fr[2] = {{.file = S("/srv/app/views.py"), .line = 7, .func = S("page"), .src = S("time.sleep(1)")},
                    {.file = S("/srv/app/db.py"), .line = 9, .func = S("fetch"), .src = S("x()")}};
  ls_event blk = {.kind = LS_K_BLOCK, .id = 1, .t = 400, .d = 50, .frames = fr, .nframes = 2};
  n += ls_record_write(rec + n, &blk, &ws);
  ck_assert_uint_lt(n, sizeof rec);

  ls_strtab st;
  ck_assert_int_eq(ls_strtab_init(&st), LSC_OK);
  char *json[2];
  for(int form = 0; form < 2; form++) { /* 0 plain, 1 with the table */
    ls_buf b;
    ls_buf_init(&b, 1 << 20);
    ls_buf_puts(&b, "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[");
    int first = 1;
    ls_rstate rs = {.t = 0, .strings = strings};
    size_t used = 0, nev = 0;
    if(form)
      ls_strtab_begin(&st);
    ck_assert_int_eq(ls_encode_records_tab(&b, &rs, form ? &st : NULL, rec, n, &first, 0, &used, &nev), LSC_OK);
    ck_assert_uint_eq(nev, 61);
    ls_buf_puts(&b, "]");
    if(form)
      ls_strtab_write(&b, &st, strings);
    ls_buf_puts(&b, "}");
    json[form] = strdup(b.data);
    ls_buf_free(&b);
  }
  /* each table string once, in the order first named; the plain form has none */
  ck_assert_uint_eq(st.n, 7); /* app.fetch, sleep, the three files, fetch, and the frames' page */
  ck_assert_ptr_null(strstr(json[0], "\"strings\""));
  cJSON *doc = cJSON_Parse(json[1]);
  ck_assert_ptr_nonnull(doc);
  cJSON *tab = cJSON_GetObjectItem(doc, "strings");
  ck_assert_int_eq(cJSON_GetArraySize(tab), (int)st.n);
  ck_assert_str_eq(cJSON_GetArrayItem(tab, 0)->valuestring, "app.fetch");
  cJSON *aw = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "events"), 1);
  ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(aw, "file")));
  ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "events"), 0), "name")));
  cJSON_Delete(doc);
  ck_assert_uint_lt(strlen(json[1]) * 100, strlen(json[0]) * 85); /* ~0.81x: names and numbers remain */

  /* the server reads both as the same events, string for string */
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b[2];
  char detail[256];
  for(int form = 0; form < 2; form++)
    ck_assert_msg(ingest_parse(json[form], strlen(json[form]), &lim, &b[form], detail, sizeof detail) == 0, "%s", detail);
  ck_assert_uint_eq(b[1]->nawaits, 30);
  ck_assert_uint_eq(b[1]->ntasks, 30);
  for(size_t i = 0; i < 30; i++) {
    ck_assert_str_eq(b[1]->tasks[i].coro, b[0]->tasks[i].coro);
    ck_assert_str_eq(b[1]->tasks[i].name, b[0]->tasks[i].name);
    ck_assert_str_eq(b[1]->awaits[i].what, b[0]->awaits[i].what);
    ck_assert_str_eq(b[1]->awaits[i].file, b[0]->awaits[i].file);
    ck_assert_str_eq(b[1]->awaits[i].func, b[0]->awaits[i].func);
    ck_assert_int_eq(b[1]->awaits[i].line, b[0]->awaits[i].line);
  }
  ck_assert_str_eq(b[1]->awaits[2].file, "caf\xc3\xa9.py");
  ck_assert_str_eq(b[1]->blocks[0].file, "/srv/app/db.py");
  ck_assert_str_eq(b[1]->blocks[0].src, "x()");
  ck_assert_int_eq((int)b[1]->blocks[0].stack_len, (int)b[0]->blocks[0].stack_len);
  ck_assert(!memcmp(b[1]->stacks + b[1]->blocks[0].stack_off, b[0]->stacks + b[0]->blocks[0].stack_off,
                    b[0]->blocks[0].stack_len));
  ingest_free(b[0]);
  ingest_free(b[1]);

  /* a new batch numbers from 0, also across the wrap of the batch counter */
  st.gen = UINT32_MAX;
  ls_strtab_begin(&st);
  ck_assert_uint_eq(st.gen, 1);
  ck_assert_uint_eq(st.n, 0);
  ls_buf b2;
  ls_buf_init(&b2, 1 << 16);
  int first = 1;
  ls_rstate rs = {.t = 0, .strings = strings};
  size_t used = 0, nev = 0;
  ck_assert_int_eq(ls_encode_records_tab(&b2, &rs, &st, rec, n, &first, 0, &used, &nev), LSC_OK);
  ck_assert_uint_eq(st.n, 7);
  ls_buf_free(&b2);
  free(json[0]);
  free(json[1]);
  ls_strtab_free(&st);
  ls_strtab_free(&st); /* a freed (zeroed) one again: nothing */
  ls_intern_free(strings);
}
END_TEST

/* A stream of records decodes with each time relative to the one before (any order of times,
 * either sign), and a JSON limit stops it between records: what was not taken decodes next time
 * from where it stopped, with the same reader state. */
START_TEST(record_stream_with_a_json_limit)
{
  enum { N = 500 };
  unsigned char *buf = malloc(N * 64);
  ck_assert_ptr_nonnull(buf);
  ls_wstate ws = {0};
  size_t len = 0;
  uint64_t ts[N];
  for(int i = 0; i < N; i++) {
    ts[i] = i % 3 == 0 ? (uint64_t)i * 1000003u : i % 3 == 1 ? (uint64_t)(N - i) * 7777u : ((uint64_t)1 << 62) + (uint64_t)i;
    ls_event ev = {.kind = i % 2 ? LS_K_STEP : LS_K_LAG, .id = (uint64_t)i + 1, .t = ts[i], .d = (uint64_t)i};
    ck_assert_uint_le(ls_record_bound(&ev), 64);
    len += ls_record_write(buf + len, &ev, &ws);
  }
  ls_rstate rs = {0};
  size_t off = 0, total = 0;
  int rounds = 0;
  while(off < len) {
    ls_buf b;
    ls_buf_init(&b, 1 << 20);
    ls_buf_puts(&b, "[");
    int first = 1;
    size_t used = 0, nev = 0;
    ck_assert_int_eq(ls_encode_records(&b, &rs, buf + off, len - off, &first, 2000, &used, &nev), LSC_OK);
    ck_assert_uint_ge(nev, 1);
    ck_assert_uint_le(b.len, 2000 + 100); /* stops at the first record past the limit */
    ls_buf_puts(&b, "]");
    cJSON *arr = cJSON_Parse(b.data);
    ck_assert_ptr_nonnull(arr);
    ck_assert_int_eq(cJSON_GetArraySize(arr), (int)nev);
    for(size_t k = 0; k < nev; k++) {
      const cJSON *e = cJSON_GetArrayItem(arr, (int)k);
      uint64_t want = ts[total + k] >= ((uint64_t)1 << 53) ? ((uint64_t)1 << 53) - 1 : ts[total + k];
      ck_assert(num(e, "t") == (double)want);
      ck_assert(num(e, "d") == (double)(total + k));
    }
    cJSON_Delete(arr);
    ls_buf_free(&b);
    off += used;
    total += nev;
    rounds++;
  }
  ck_assert_uint_eq(total, N);
  ck_assert_int_ge(rounds, 5);
  free(buf);
}
END_TEST

/* The table numbers each distinct string once, from any number of threads at once, and once full
 * says so (-1: the record carries the string inline). */
struct intern_arg { ls_intern *t; int base; int64_t ids[2000]; };

static void *intern_worker(void *p)
{
  struct intern_arg *a = p;
  char s[32];
  for(int i = 0; i < 2000; i++) {
    int n = snprintf(s, sizeof s, "mod%d.func", (i * 7 + a->base) % 2000);
    a->ids[(i * 7 + a->base) % 2000] = ls_intern_id(a->t, s, (size_t)n);
  }
  return NULL;
}

START_TEST(intern_numbers_each_string_once)
{
  ls_intern *t = NULL;
  ck_assert_int_eq(ls_intern_new(&t), LSC_OK);
  struct intern_arg args[4];
  pthread_t th[4];
  for(int k = 0; k < 4; k++) {
    args[k].t = t;
    args[k].base = k * 500;
    ck_assert_int_eq(pthread_create(&th[k], NULL, intern_worker, &args[k]), 0);
  }
  for(int k = 0; k < 4; k++) pthread_join(th[k], NULL);
  ck_assert_uint_eq(ls_intern_count(t), 2000);
  for(int i = 0; i < 2000; i++) {
    ck_assert_int_ge(args[0].ids[i], 0);
    for(int k = 1; k < 4; k++) ck_assert_int_eq(args[k].ids[i], args[0].ids[i]);
    ls_str s;
    char want[32];
    ck_assert(ls_intern_get(t, (uint64_t)args[0].ids[i], &s));
    int n = snprintf(want, sizeof want, "mod%d.func", i);
    ck_assert_uint_eq(s.n, (size_t)n);
    ck_assert(memcmp(s.p, want, s.n) == 0);
  }
  char big[LS_INTERN_MAX_STR + 1];
  memset(big, 'x', sizeof big);
  ck_assert_int_eq(ls_intern_id(t, big, sizeof big), -1); /* too long: inline */
  int64_t last = 0;
  for(int i = 0; i < 20000 && last >= 0; i++) {
    char s[32];
    int n = snprintf(s, sizeof s, "other%d", i);
    last = ls_intern_id(t, s, (size_t)n);
  }
  ck_assert_int_eq(last, -1); /* full */
  ck_assert_int_ge(ls_intern_id(t, "mod5.func", 9), 0); /* what it holds it still finds */
  ck_assert(!ls_intern_get(t, 1u << 30, &(ls_str){0}));
  ls_intern_free(t);
}
END_TEST

static Suite *collector_records_suite(void)
{
  Suite *s = suite_create("collector_records");
  TCase *c = tcase_create("buf");
  tcase_add_test(c, jstr_escapes_and_replaces_invalid_utf8);
  tcase_add_test(c, jstr_output_always_passes_the_servers_utf8_check);
  tcase_add_test(c, collector_and_server_agree_on_the_table);
  tcase_add_test(c, token_rules);
  tcase_add_test(c, result_codes_have_distinct_names);
  suite_add_tcase(s, c);
  c = tcase_create("src");
  tcase_add_test(c, src_lines);
  tcase_add_test(c, src_line_across_blocks);
  suite_add_tcase(s, c);
  c = tcase_create("records");
  tcase_add_test(c, records_round_trip_every_kind);
  tcase_add_test(c, records_refuse_garbage);
  tcase_add_test(c, records_are_compact_and_say_the_same);
  tcase_add_test(c, records_name_known_strings_by_number);
  tcase_add_test(c, records_encode_with_a_batch_strings_table);
  tcase_add_test(c, record_stream_with_a_json_limit);
  tcase_add_test(c, intern_numbers_each_string_once);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(collector_records_suite());
}
