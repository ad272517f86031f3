/* fuzz_query.c — libFuzzer-style target for what the REST handlers parse from URLs, against a
 * real SQLite store seeded once through the real writer; answers are checked against docs/api.md.
 * The handlers and the store are query.c's, export.c's and store.c's; this file only asks.
 *
 * Parameters: from, to, px, tasks, min_ms, limit, name, format, the session id; every value also
 * goes through query_parse_i64 against a reference parser. Input: byte 0 picks the handler
 * ('0'..'8', else mod 9), byte 1 the session ('0'..'3', else mod 4), the rest is a query string
 * "a=b&c=d" (%XX decoded, as libmicrohttpd hands values to http.c); "id=" replaces the session. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "export.h"
#include "fuzz_common.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "query.h"
#include "store.h"
#include "writer.h"

#define TWO_POW_53 9007199254740992LL
#define MAX_ARGS 32

/* ---------------------------------------------------------------- the seeded store */

/* One store for the whole run, as libFuzzer targets keep expensive setup across inputs; it lives
 * in a private temporary directory removed at exit. */
static struct {
  store *s;
  char dir[256], db[300];
  int ready;
} fx;

static const char *const session_ids[] = {"s-9f1c2e", "s-big", "s-bare", "s-missing"};

static const char design_batch[] = FUZZ_DESIGN_BATCH;

static const char bare_batch[] =
  "{\"v\":1,\"batch\":\"b-bare\",\"session\":\"s-bare\",\"meta\":{\"name\":\"bare %_ \\u00e9\"},\"events\":[]}";

/* A busier session: a task tree with many short steps and awaits (so the level of detail has
 * columns to reduce), blocks with stacks, lag samples, and events at the edge of 2^53. */
static int build_big_batch(jbuf *j)
{
  jbuf_puts(j, "{\"v\":1,\"batch\":\"b-big\",\"session\":\"s-big\",\"meta\":{\"name\":\"GET /big\"},\"events\":[");
  for(int id = 1; id <= 40; id++) {
    jbuf_printf(j, "%s{\"k\":\"task\",\"id\":%d,\"parent\":%d,\"name\":\"T%d\",\"coro\":\"m.f%d\",\"t\":%d}",
                id > 1 ? "," : "", id, id / 3, id, id % 5, id * 1000);
    for(int k = 0; k < 8; k++) {
      long long t = id * 1000LL + k * 997LL * id;
      jbuf_printf(j, ",{\"k\":\"step\",\"id\":%d,\"t\":%lld,\"d\":%d}", id, t, 13 + k * 7);
      jbuf_printf(j, ",{\"k\":\"await\",\"id\":%d,\"t\":%lld,\"d\":%lld,\"what\":\"w%d\",\"file\":\"f%d.py\","
                     "\"line\":%d,\"func\":\"g\"}", id, t + 500, (k % 4) * 3000000LL + 100, k % 3, id % 4, k % 7);
    }
    if(id % 3 == 0)
      jbuf_printf(j, ",{\"k\":\"done\",\"id\":%d,\"t\":%d,\"state\":\"%s\",\"exc\":\"E: \\\"x\\\"\"}", id,
                  900000 + id, id % 2 ? "error" : "ok");
  }
  for(int k = 0; k < 200; k++)
    jbuf_printf(j, ",{\"k\":\"lag\",\"t\":%d,\"d\":%d}", k * 4999, (k * 7919) % 3000000);
  for(int k = 0; k < 20; k++)
    jbuf_printf(j, ",{\"k\":\"block\",\"id\":%d,\"t\":%d,\"d\":%d,\"stack\":[{\"file\":\"a.py\",\"line\":1},"
                   "{\"file\":\"b\\u00e9.py\",\"line\":%d,\"func\":\"h\",\"src\":\"time.sleep(%d)\"}]}",
                k % 5, k * 40000, 100000 + k, k, k);
  /* the edges of the ingest contract: t, d and t + d just below 2^53 */
  jbuf_puts(j, ",{\"k\":\"step\",\"id\":7,\"t\":9007199254740990,\"d\":1}"
               ",{\"k\":\"lag\",\"t\":0,\"d\":9007199254740991}"
               ",{\"k\":\"block\",\"t\":9007199254740991,\"d\":0}]}");
  return jbuf_status(j);
}

static void put(writer *w, const char *body, size_t len)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  FUZZ_CHECK(ingest_parse(body, len, &lim, &b, detail, sizeof(detail)) == 0, "seed batch: %s", detail);
  int dup = 0;
  FUZZ_CHECK(writer_put(w, b, &dup) == 0 && !dup, "seed batch not stored");
}

static void forget_exports(void);

static void teardown(void)
{
  forget_exports();
  if(!fx.ready)
    return;
  store_close(fx.s);
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[320];
  for(size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
    snprintf(p, sizeof(p), "%s%s", fx.db, suffix[i]);
    unlink(p);
  }
  rmdir(fx.dir);
  fx.ready = 0;
}

static void setup(void)
{
  log_set_level(LOG_ERROR);
  const char *tmp = getenv("TMPDIR");
  snprintf(fx.dir, sizeof(fx.dir), "%s/loopscope-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  FUZZ_CHECK(mkdtemp(fx.dir), "mkdtemp %s failed", fx.dir);
  snprintf(fx.db, sizeof(fx.db), "%s/fuzz.db", fx.dir);
  store_options o;
  store_default_options(&o, fx.db);
  o.readers = 1;
  char err[256];
  FUZZ_CHECK(store_open(&o, &fx.s, err, sizeof(err)) == 0, "store_open: %s", err);
  fx.ready = 1;
  atexit(teardown);
  metrics m;
  metrics_init(&m);
  writer *w = NULL;
  FUZZ_CHECK(writer_start(fx.s, &m, 8, 4, &w) == 0, "writer_start failed");
  put(w, design_batch, sizeof(design_batch) - 1);
  put(w, bare_batch, sizeof(bare_batch) - 1);
  jbuf big;
  jbuf_init(&big, 8u << 20);
  FUZZ_CHECK(build_big_batch(&big) == 0, "building the big batch failed");
  put(w, big.data, big.len);
  jbuf_free(&big);
  writer_stop(w);
}

/* ---------------------------------------------------------------- the query string */

typedef struct qargs {
  char *name[MAX_ARGS], *value[MAX_ARGS];
  int n;
} qargs;

static int hexval(char c)
{
  if(c >= '0' && c <= '9') return c - '0';
  if(c >= 'a' && c <= 'f') return c - 'a' + 10;
  if(c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* %XX-decodes s in place; a decoded NUL ends the string, as it would in a C string. */
static void unescape(char *s)
{
  char *o = s;
  for(char *p = s; *p; p++) {
    if(p[0] == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
      p += 2;
    }
    else
      *o++ = *p;
  }
  *o = '\0';
}

/* Splits buf (NUL-terminated, modified) into name=value pairs; a name without '=' has value "". */
static void split_args(char *buf, qargs *q)
{
  q->n = 0;
  char *p = buf;
  while(*p && q->n < MAX_ARGS) {
    char *amp = strchr(p, '&');
    if(amp)
      *amp = '\0';
    char *eq = strchr(p, '=');
    if(eq)
      *eq = '\0';
    q->name[q->n] = p;
    q->value[q->n] = eq ? eq + 1 : p + strlen(p);
    unescape(q->name[q->n]);
    unescape(q->value[q->n]);
    q->n++;
    if(!amp)
      break;
    p = amp + 1;
  }
}

static const char *get_arg(void *ctx, const char *name)
{
  const qargs *q = ctx;
  for(int i = 0; i < q->n; i++)
    if(!strcmp(q->name[i], name))
      return q->value[i];
  return NULL;
}

/* ---------------------------------------------------------------- query_parse_i64 */

/* What query_parse_i64 must do: an optional '-', one or more digits, nothing else, the value in
 * [lo, hi] (a value too large for int64 is out of range). 0 and *out, or -1. */
static int reference_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
  int neg = *s == '-';
  const char *p = s + neg;
  if(!*p)
    return -1;
  uint64_t mag = 0;
  int big = 0;
  for(; *p; p++) {
    if(*p < '0' || *p > '9')
      return -1;
    unsigned dgt = (unsigned)(*p - '0');
    if(mag > (UINT64_MAX - dgt) / 10)
      big = 1;
    else
      mag = mag * 10 + dgt;
  }
  int64_t v;
  if(neg) {
    if(big || mag > (uint64_t)INT64_MAX + 1)
      return -1;
    v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
  }
  else {
    if(big || mag > (uint64_t)INT64_MAX)
      return -1;
    v = (int64_t)mag;
  }
  if(v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static void check_parse_i64(const char *s)
{
  static const int64_t ranges[][2] = {{0, TWO_POW_53}, {1, 10000}, {INT64_MIN, INT64_MAX}, {-5, 5}};
  for(size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
    int64_t got = 12345, want = 0;
    int rc = query_parse_i64(s, ranges[i][0], ranges[i][1], &got);
    int ref = reference_i64(s, ranges[i][0], ranges[i][1], &want);
    FUZZ_CHECK((rc == 0) == (ref == 0), "query_parse_i64(\"%s\", %lld, %lld) = %d, expected %s", s,
               (long long)ranges[i][0], (long long)ranges[i][1], rc, ref ? "a refusal" : "success");
    FUZZ_CHECK(rc || got == want, "query_parse_i64(\"%s\") = %lld, expected %lld", s, (long long)got,
               (long long)want);
    FUZZ_CHECK(!rc || got == 12345, "query_parse_i64(\"%s\") wrote *out on failure", s);
  }
}

/* ---------------------------------------------------------------- answers */

static double dnum(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  FUZZ_CHECK(cJSON_IsNumber(v), "answer lacks the number %s", k);
  return v->valuedouble;
}

static int64_t num(const cJSON *o, const char *k)
{
  return (int64_t)dnum(o, k);
}

/* Items of a timeline lane (or blocks, lag) overlap [from, to), are sorted by t, and at most
 * kinds * px of them are narrower than a pixel. */
static void check_lod_items(const cJSON *items, int64_t from, int64_t to, int64_t per, int64_t px,
                            int kinds, const char *what)
{
  FUZZ_CHECK(cJSON_IsArray(items), "%s: not an array", what);
  int64_t narrow = 0;
  double last_t = -1;
  for(const cJSON *it = items->child; it; it = it->next) {
    double t = dnum(it, "t"), d = dnum(it, "d");
    FUZZ_CHECK(t >= last_t, "%s: items not sorted by t", what);
    last_t = t;
    FUZZ_CHECK(t < (double)to && (d == 0 ? t >= (double)from : t + d > (double)from),
               "%s: item t=%.0f d=%.0f outside [%lld, %lld)", what, t, d, (long long)from, (long long)to);
    FUZZ_CHECK(num(it, "n") >= 1, "%s: item with n < 1", what);
    narrow += d < (double)per;
  }
  FUZZ_CHECK(narrow <= kinds * px, "%s: %lld narrow items for %lld px", what, (long long)narrow,
             (long long)px);
}

/* The integer after the first "key": in JSON text, read exactly (doubles round above 2^53). */
static int64_t raw_int(const jbuf *out, const char *key)
{
  char pat[32];
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  const char *at = strstr(out->data, pat);
  FUZZ_CHECK(at, "answer lacks %s", key);
  return strtoll(at + strlen(pat), NULL, 10);
}

/* only=lanes (docs/api.md): the lanes alone, no session-wide blocks and lag */
static int lanes_only(const qargs *q)
{
  const char *v = get_arg((void *)q, "only");
  return v && !strcmp(v, "lanes");
}

static void check_timeline(const cJSON *root, const jbuf *out, const qargs *q)
{
  /* The view echoed back: the answer starts {"from":..,"to":..,"px":..,"ns_per_px":.. */
  int64_t from = raw_int(out, "from"), to = raw_int(out, "to"), px = raw_int(out, "px"),
          per = raw_int(out, "ns_per_px");
  const char *v;
  FUZZ_CHECK(from >= 0 && to > from, "timeline view [%lld, %lld) is empty", (long long)from,
             (long long)to);
  /* Open question (README.md): a default `to` is derived from t + d or from + 1 and may pass
   * 2^53, the limit of the accepted `to` and of exact doubles in a JS page. Checked on request. */
  if(getenv("FUZZ_STRICT"))
    FUZZ_CHECK(from <= TWO_POW_53 && to <= TWO_POW_53,
               "timeline view [%lld, %lld) outside the range the server accepts, [0, 2^53]",
               (long long)from, (long long)to);
  FUZZ_CHECK(px >= 1 && px <= 10000 && per >= 1, "timeline px %lld / ns_per_px %lld out of range",
             (long long)px, (long long)per);
  if((v = get_arg((void *)q, "from")))
    FUZZ_CHECK(from == strtoll(v, NULL, 10), "timeline from %lld != asked %s", (long long)from, v);
  if((v = get_arg((void *)q, "to")))
    FUZZ_CHECK(to == strtoll(v, NULL, 10), "timeline to %lld != asked %s", (long long)to, v);
  if((v = get_arg((void *)q, "px")))
    FUZZ_CHECK(px == strtoll(v, NULL, 10), "timeline px differs from the asked %s", v);
  const char *tasks = get_arg((void *)q, "tasks");
  const cJSON *lanes = cJSON_GetObjectItemCaseSensitive(root, "lanes");
  FUZZ_CHECK(cJSON_IsArray(lanes), "timeline lanes not an array");
  for(const cJSON *l = lanes->child; l; l = l->next) {
    int64_t task = num(l, "task");
    if(tasks && *tasks) {
      /* the lane must be one of the asked ids */
      int found = 0;
      char buf[32];
      snprintf(buf, sizeof(buf), "%lld", (long long)task);
      for(const char *p = tasks; *p && !found;) {
        size_t n = strcspn(p, ",");
        int64_t id;
        char one[32];
        if(n < sizeof(one)) {
          memcpy(one, p, n);
          one[n] = '\0';
          found = query_parse_i64(one, 0, TWO_POW_53, &id) == 0 && id == task;
        }
        p += n + (p[n] == ',');
      }
      FUZZ_CHECK(found, "timeline lane %s not among tasks=%s", buf, tasks);
    }
    check_lod_items(cJSON_GetObjectItemCaseSensitive(l, "items"), from, to, per, px, 2, "lane");
  }
  const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(root, "blocks"),
              *lag = cJSON_GetObjectItemCaseSensitive(root, "lag");
  if(lanes_only(q)) {
    FUZZ_CHECK(!blocks && !lag, "timeline: only=lanes answered blocks or lag");
    return;
  }
  check_lod_items(blocks, from, to, per, px, 1, "blocks");
  check_lod_items(lag, from, to, per, px, 1, "lag");
}

static void check_sessions(const cJSON *root, const qargs *q)
{
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "sessions");
  FUZZ_CHECK(cJSON_IsArray(list), "sessions: not an array");
  const char *name = get_arg((void *)q, "name");
  const char *ls = get_arg((void *)q, "limit");
  int64_t limit = ls ? strtoll(ls, NULL, 10) : 100;
  FUZZ_CHECK(cJSON_GetArraySize(list) <= limit, "sessions: more than limit=%lld", (long long)limit);
  for(const cJSON *s = list->child; s && name; s = s->next) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
    FUZZ_CHECK(cJSON_IsString(n) && strstr(n->valuestring, name),
               "sessions: name filter \"%s\" matched \"%s\"", name,
               cJSON_IsString(n) ? n->valuestring : "(null)");
  }
}

static void check_awaits(const cJSON *root, const qargs *q)
{
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "awaits");
  FUZZ_CHECK(cJSON_IsArray(list), "awaits: not an array");
  const char *ls = get_arg((void *)q, "limit");
  int64_t limit = ls ? strtoll(ls, NULL, 10) : 1000;
  FUZZ_CHECK(cJSON_GetArraySize(list) <= limit, "awaits: more than limit");
  FUZZ_CHECK(num(root, "total") >= cJSON_GetArraySize(list), "awaits: total below the list");
  const char *ms = get_arg((void *)q, "min_ms");
  double min_ns = (ms ? strtod(ms, NULL) : 10.0) * 1e6;
  /* longest first unless another order was asked (query_page.c: sort=t|task, order=asc) */
  const char *sort = get_arg((void *)q, "sort"), *order = get_arg((void *)q, "order");
  int longest_first = (!sort || !strcmp(sort, "d")) && (!order || !strcmp(order, "desc"));
  double last = -1;
  for(const cJSON *w = list->child; w; w = w->next) {
    double d = dnum(w, "d");
    /* tolerance for the decimal → double conversion of min_ms only, not for the rule */
    double slack = min_ns * 1e-15 > 1e-3 ? min_ns * 1e-15 : 1e-3;
    FUZZ_CHECK(d >= min_ns - slack, "awaits: d=%.0f below min_ms=%s", d, ms ? ms : "10");
    FUZZ_CHECK(!longest_first || last < 0 || d <= last, "awaits: not longest first");
    last = d;
  }
}

/* An export is one ingest-v1 batch: it must parse again, with the session's id. */
static void check_export(const jbuf *out, const char *id)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  int rc = ingest_parse(out->data, out->len, &lim, &b, detail, sizeof(detail));
  FUZZ_CHECK(rc == 0, "export of %s does not parse as a batch: %s", id, detail);
  FUZZ_CHECK(!strcmp(b->session, id), "export names session %s, not %s", b->session, id);
  ingest_free(b);
}

static int starts_with_param(const char *detail, const qargs *q)
{
  static const char *const params[] = {"from", "to", "px", "tasks", "min_ms", "limit", "offset", "find",
                                       "collapsed", "lanes_offset", "lanes_limit", "sort", "order", "at",
                                       "only"};
  for(size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
    size_t n = strlen(params[i]);
    if(!strncmp(detail, params[i], n) && detail[n] == ':' && detail[n + 1] == ' ')
      return get_arg((void *)q, params[i]) != NULL;
  }
  return 0;
}

/* /rows: rows numbered from offset, one after another, at most limit of them and within total;
 * with px a timeline whose lanes are among the rows answered. */
static void check_rows(const cJSON *root, const qargs *q)
{
  int64_t total = num(root, "total"), offset = num(root, "offset");
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
  FUZZ_CHECK(cJSON_IsArray(rows), "rows: no rows array");
  const char *v = get_arg((void *)q, "limit");
  int64_t limit = v ? strtoll(v, NULL, 10) : 200, k = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    FUZZ_CHECK(num(r, "row") == offset + k, "rows: row %lld where %lld was due", (long long)num(r, "row"),
               (long long)(offset + k));
    k++;
  }
  FUZZ_CHECK(k <= limit && (k == 0 || offset + k <= total), "rows: %lld rows from %lld of %lld (limit %lld)",
             (long long)k, (long long)offset, (long long)total, (long long)limit);
  const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "timeline");
  FUZZ_CHECK(!get_arg((void *)q, "px") == !tl, "rows: timeline %s without px", tl ? "given" : "missing");
  if(tl)
    FUZZ_CHECK((cJSON_GetObjectItemCaseSensitive(tl, "blocks") == NULL) == lanes_only(q) &&
                   (cJSON_GetObjectItemCaseSensitive(tl, "lag") == NULL) == lanes_only(q),
               "rows: timeline blocks/lag %s only=lanes", lanes_only(q) ? "despite" : "missing without");
  const cJSON *lane;
  const cJSON *lanes = tl ? cJSON_GetObjectItemCaseSensitive(tl, "lanes") : NULL;
  cJSON_ArrayForEach(lane, lanes) {
    int found = 0;
    cJSON_ArrayForEach(r, rows) found |= num(r, "id") == num(lane, "task");
    FUZZ_CHECK(found, "rows: timeline lane %lld not among the rows", (long long)num(lane, "task"));
  }
}

/* The store does not change after setup, so an export of one session in one format is the same
 * bytes every time; parsing a whole-session export twice over (cJSON, then ingest_parse) was ~80%
 * of the cost of such an input and most of this target's run time. An answer byte-identical to
 * one that already passed every check would pass them again: it is compared, not re-checked. */
static struct {
  char id[130], format[8];
  char *bytes;
  size_t len;
} verified[16];
static size_t nverified;

static void forget_exports(void)
{
  for(size_t i = 0; i < nverified; i++)
    free(verified[i].bytes);
  nverified = 0;
}

static int export_verified(const char *id, const char *format, const jbuf *out)
{
  for(size_t i = 0; i < nverified; i++)
    if(!strcmp(verified[i].id, id) && !strcmp(verified[i].format, format))
      return verified[i].len == out->len && !memcmp(verified[i].bytes, out->data, out->len);
  return 0;
}

/* Remembers an answer that passed; when the table is full (it is not: 3 sessions x 3 formats),
 * later answers are simply checked in full each time. */
static void export_remember(const char *id, const char *format, const jbuf *out)
{
  if(nverified >= sizeof(verified) / sizeof(verified[0]) || strlen(id) >= sizeof(verified[0].id) ||
     strlen(format) >= sizeof(verified[0].format))
    return;
  for(size_t i = 0; i < nverified; i++)
    if(!strcmp(verified[i].id, id) && !strcmp(verified[i].format, format))
      return; /* a different answer for the same export: checked in full every time */
  char *copy = malloc(out->len ? out->len : 1);
  if(!copy)
    return;
  memcpy(copy, out->data, out->len);
  strcpy(verified[nverified].id, id);
  strcpy(verified[nverified].format, format);
  verified[nverified].bytes = copy;
  verified[nverified].len = out->len;
  nverified++;
}

/* ---------------------------------------------------------------- which requests are valid */

static int int_param_ok(const qargs *q, const char *name, int64_t lo, int64_t hi)
{
  const char *v = get_arg((void *)q, name);
  int64_t ignored;
  return !v || reference_i64(v, lo, hi, &ignored) == 0;
}

/* tasks=: empty means all; otherwise 1..2000 comma-separated ids in [0, 2^53), each written in
 * fewer than 24 characters (parse_tasks' buffer: only zero-padded ids are that long). */
static int ids_param_ok(const qargs *q, const char *name)
{
  const char *v = get_arg((void *)q, name);
  if(!v || !*v)
    return 1;
  size_t count = 0;
  for(const char *p = v;; count++) {
    size_t n = strcspn(p, ",");
    char one[24];
    int64_t ignored;
    if(n == 0 || n >= sizeof(one))
      return 0;
    memcpy(one, p, n);
    one[n] = '\0';
    if(reference_i64(one, 0, TWO_POW_53 - 1, &ignored))
      return 0;
    if(!p[n])
      break;
    p += n + 1;
  }
  return count + 1 <= 2000;
}

/* only=: empty (everything) or "lanes" */
static int only_param_ok(const qargs *q)
{
  const char *v = get_arg((void *)q, "only");
  return !v || !*v || !strcmp(v, "lanes");
}

/* The table views' page (docs/api.md, "sort, order, offset, limit"): sort one of the view's
 * columns, order asc or desc, offset in [0, 2^31 - 1], limit in [1, max]. */
static int page_params_ok(const qargs *q, const char *const *cols, int64_t max_limit)
{
  const char *sort = get_arg((void *)q, "sort"), *order = get_arg((void *)q, "order");
  int sort_ok = !sort;
  for(size_t i = 0; cols[i] && !sort_ok; i++)
    sort_ok = !strcmp(sort, cols[i]);
  return sort_ok && (!order || !strcmp(order, "asc") || !strcmp(order, "desc")) &&
         int_param_ok(q, "offset", 0, 2147483647) && int_param_ok(q, "limit", 1, max_limit);
}

/* 1 when docs/api.md says the request's parameters are acceptable (min_ms aside: its decimal
 * parsing is strtod's), for the handlers that take parameters. */
static int params_ok(size_t h, const qargs *q)
{
  switch(h) {
  case 0: return int_param_ok(q, "limit", 1, 1000);
  case 2: {
    static const char *const cols[] = {"created", "id", "busy_ns", "wait_ns", "duration", NULL};
    return page_params_ok(q, cols, 10000) && int_param_ok(q, "at", 1, TWO_POW_53 - 1);
  }
  case 3: {
    static const char *const cols[] = {"d", "t", "task", NULL};
    return page_params_ok(q, cols, 100000);
  }
  case 4: {
    static const char *const cols[] = {"t", "d", "task", NULL};
    return page_params_ok(q, cols, 10000);
  }
  case 6: return int_param_ok(q, "px", 1, 10000);
  case 7:
    return int_param_ok(q, "from", 0, TWO_POW_53 - 1) && int_param_ok(q, "to", 0, TWO_POW_53) &&
           int_param_ok(q, "px", 1, 10000) && ids_param_ok(q, "tasks") && only_param_ok(q);
  case 9:
    return int_param_ok(q, "offset", 0, TWO_POW_53 - 1) && int_param_ok(q, "limit", 0, 2000) &&
           int_param_ok(q, "find", 1, TWO_POW_53 - 1) && ids_param_ok(q, "collapsed") &&
           int_param_ok(q, "px", 1, 10000) && int_param_ok(q, "from", 0, TWO_POW_53 - 1) &&
           int_param_ok(q, "to", 0, TWO_POW_53) && int_param_ok(q, "lanes_offset", 0, TWO_POW_53 - 1) &&
           int_param_ok(q, "lanes_limit", 0, 2000) && only_param_ok(q);
  default: return 1;
  }
}

/* ---------------------------------------------------------------- the target */

static const struct { const char *name; query_fn fn; } handlers[] = {
  {"sessions", query_sessions}, {"session", query_session}, {"tasks", query_tasks},
  {"awaits", query_awaits}, {"blocks", query_blocks}, {"lag", query_lag},
  {"concurrency", query_concurrency}, {"timeline", query_timeline}, {"export", NULL},
  {"rows", query_rows},
};
enum { NHANDLERS = sizeof(handlers) / sizeof(handlers[0]) };

static int log2_bucket(uint64_t v)
{
  int b = 0;
  while(v) {
    b++;
    v >>= 1;
  }
  return b;
}

/* Feedback: the handler, its status, the rule that refused (digits dropped) or the rough shape
 * of the answer (log2 of its size and of the timeline's ns per pixel). */
static void note(const char *handler, int rc, const char *detail, const jbuf *out)
{
  if(!fuzz_feedback)
    return;
  char sig[160];
  size_t n = (size_t)snprintf(sig, sizeof(sig), "query:%s:%d:%d:", handler, rc,
                              rc ? 0 : log2_bucket(out->len));
  const char *per = rc || !out->data ? NULL : strstr(out->data, "\"ns_per_px\":");
  if(per)
    n += (size_t)snprintf(sig + n, sizeof(sig) - n, "%d:", log2_bucket(strtoull(per + 12, NULL, 10)));
  for(const char *d = detail; *d && n + 1 < sizeof(sig); d++)
    if(*d < '0' || *d > '9')
      sig[n++] = *d;
  sig[n] = '\0';
  fuzz_feedback(sig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if(size < 2 || size > 1u << 16)
    return 0;
  if(!fx.ready)
    setup();
  size_t h = data[0] >= '0' && data[0] < '0' + NHANDLERS ? (size_t)(data[0] - '0') : data[0] % NHANDLERS;
  size_t sess = data[1] >= '0' && data[1] <= '3' ? (size_t)(data[1] - '0') : data[1] % 4u;
  char *qs = malloc(size - 1);
  if(!qs)
    return 0;
  memcpy(qs, data + 2, size - 2);
  qs[size - 2] = '\0';
  qargs q;
  split_args(qs, &q);
  for(int i = 0; i < q.n; i++)
    check_parse_i64(q.value[i]);

  const char *id = get_arg(&q, "id");
  if(!id)
    id = session_ids[sess];
  if(!ingest_id_ok(id)) { /* http.c answers 404 before any handler runs */
    free(qs);
    return 0;
  }
  int known = 0;
  for(size_t i = 0; i < 3; i++)
    known |= !strcmp(id, session_ids[i]);

  jbuf out;
  jbuf_init(&out, 64u << 20);
  char detail[256];
  memset(detail, 0, sizeof(detail));
  int rc;
  if(handlers[h].fn) {
    query_args a = {get_arg, &q};
    rc = handlers[h].fn(fx.s, h == 0 ? NULL : id, &a, &out, detail, sizeof(detail));
  }
  else { /* export: http.c refuses other formats before calling export_session */
    const char *format = get_arg(&q, "format");
    if(!format)
      format = "json";
    if(strcmp(format, "json") && strcmp(format, "chrome") && strcmp(format, "otlp")) {
      jbuf_free(&out);
      free(qs);
      return 0;
    }
    rc = export_session(fx.s, id, format, &out);
  }
  note(handlers[h].name, rc, detail, &out);

  FUZZ_CHECK(rc == 0 || rc == LS_EINVAL || rc == LS_ENOTFOUND, "%s returned %d", handlers[h].name, rc);
  if(rc == LS_ENOTFOUND)
    FUZZ_CHECK(h != 0 && !known, "%s: session %s not found", handlers[h].name, id);
  if(rc == LS_EINVAL)
    FUZZ_CHECK(starts_with_param(detail, &q), "%s: detail \"%s\" names no given parameter",
               handlers[h].name, detail);
  int valid = params_ok(h, &q);
  if(!valid)
    FUZZ_CHECK(rc == LS_EINVAL, "%s accepted invalid parameters (rc %d)", handlers[h].name, rc);
  else if(rc == LS_EINVAL && h != 3 && strncmp(detail, "to: must be greater", 19))
    FUZZ_CHECK(0, "%s refused valid parameters: %s", handlers[h].name, detail);
  const char *format = get_arg(&q, "format") ? get_arg(&q, "format") : "json";
  /* an export byte-identical to one that passed every check below passes them again */
  int seen = rc == 0 && h == 8 && export_verified(id, format, &out);
  if(rc == 0 && !seen) {
    /* The answer's tree lives in an arena (ingest.c's hooks): a timeline answer is thousands of
     * nodes, and one malloc and free each under ASan was a third of this target's time. */
    arena tree;
    arena_init(&tree);
    cJSON *root = ingest_json_parse_in(&tree, out.data, out.len);
    FUZZ_CHECK(cJSON_IsObject(root), "%s: the answer is not a JSON object: %.200s", handlers[h].name,
               out.data ? out.data : "(empty)");
    if(h == 0)
      check_sessions(root, &q);
    else if(h == 3)
      check_awaits(root, &q);
    else if(h == 7)
      check_timeline(root, &out, &q);
    else if(h == 9)
      check_rows(root, &q);
    else if(h == 8 && !strcmp(format, "json"))
      check_export(&out, id);
    arena_free(&tree);
    if(h == 8)
      export_remember(id, format, &out);
  }
  jbuf_free(&out);
  free(qs);
  return 0;
}
