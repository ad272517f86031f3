/* fuzz_ingest.c — libFuzzer-style target for ingest_parse(): any bytes in, and beyond "no crash"
 * it checks the contract of ingest.h on every result (rows in range, strings valid, errors that
 * name a field). Driven by replay_main.c under gcc, or by libFuzzer/AFL++ (see README.md).
 * Built with FUZZ_RECORDS it is fuzz_records: the same checks on ingest_parse_records, the binary
 * record form's reader (corpus/records, made by make_records_corpus.py). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ingest.h"
#include "utf8.h"

#define TWO_POW_53 9007199254740992LL

#ifdef FUZZ_RECORDS
#define PARSE ingest_parse_records
#else
#define PARSE ingest_parse
#endif

/* Range checks on ints the parser produced. */
static void check_time(int64_t v, const char *what)
{
  FUZZ_CHECK(v >= 0 && v < TWO_POW_53, "%s = %lld outside [0, 2^53)", what, (long long)v);
}

static void check_id(int64_t v, const char *what)
{
  FUZZ_CHECK(v >= 1 && v < TWO_POW_53, "%s = %lld outside [1, 2^53)", what, (long long)v);
}

static void check_line(int64_t v, const char *what)
{
  FUZZ_CHECK(v == -1 || (v >= 0 && v < TWO_POW_53), "%s = %lld is neither -1 nor in [0, 2^53)",
             what, (long long)v);
}

/* Well-formed UTF-8 by the Unicode standard's table 3-7 (byte ranges per lead byte), written
 * independently of utf8_valid so that a bug there cannot hide behind itself. */
static int reference_utf8_ok(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while(i < n) {
    unsigned char c = s[i];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if(c <= 0x7F) len = 1;
    else if(c >= 0xC2 && c <= 0xDF) len = 2;
    else if(c == 0xE0) { len = 3; lo = 0xA0; }
    else if(c >= 0xE1 && c <= 0xEC) len = 3;
    else if(c == 0xED) { len = 3; hi = 0x9F; }
    else if(c >= 0xEE && c <= 0xEF) len = 3;
    else if(c == 0xF0) { len = 4; lo = 0x90; }
    else if(c >= 0xF1 && c <= 0xF3) len = 4;
    else if(c == 0xF4) { len = 4; hi = 0x8F; }
    else return 0;
    if(len > n - i)
      return 0;
    for(size_t k = 1; k < len; k++) {
      unsigned char b = s[i + k];
      if(b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
        return 0;
    }
    i += len;
  }
  return 1;
}

/* The id rule of ingest.h, restated: 1..128 bytes of [A-Za-z0-9._:@+~=-]. */
static int reference_id_ok(const char *s)
{
  size_t n = strlen(s);
  if(n < 1 || n > 128)
    return 0;
  for(size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("._:@+~=-", c))))
      return 0;
  }
  return 1;
}

/* NULL (absent) or valid UTF-8 of at most max bytes. */
static void check_str(const char *s, size_t max, const char *what)
{
  if(!s)
    return;
  size_t n = strlen(s);
  FUZZ_CHECK(n <= max, "%s: %zu bytes, limit %zu", what, n, max);
  FUZZ_CHECK(reference_utf8_ok((const unsigned char *)s, n), "%s: not valid UTF-8", what);
}

static void check_span(const ingest_batch *b, int kind, int64_t t, int64_t d, const char *what)
{
  check_time(t, what);
  check_time(d, what);
  FUZZ_CHECK(t + d <= b->max_t, "%s: t + d = %lld beyond max_t %lld", what, (long long)(t + d),
             (long long)b->max_t);
  if(kind >= 0)
    FUZZ_CHECK(d <= b->max_d[kind], "%s: d %lld beyond max_d %lld", what, (long long)d,
               (long long)b->max_d[kind]);
}

/* A block's re-encoded stack: a JSON array inside b->stacks whose last frame is the block's
 * innermost frame, with no more than max_frames frames. */
static void check_stack(const ingest_batch *b, const ingest_block *x, const ingest_limits *lim,
                        size_t stacks_len)
{
  FUZZ_CHECK(x->stack_off <= stacks_len && x->stack_len <= stacks_len - x->stack_off,
             "block stack [%zu, +%zu) outside the %zu bytes of stacks", x->stack_off, x->stack_len,
             stacks_len);
  cJSON *st = cJSON_ParseWithLength(b->stacks + x->stack_off, x->stack_len);
  FUZZ_CHECK(st && cJSON_IsArray(st), "block stack is not a JSON array: %.*s", (int)x->stack_len,
             b->stacks + x->stack_off);
  int n = cJSON_GetArraySize(st);
  FUZZ_CHECK(n >= 0 && (size_t)n <= lim->max_frames, "block stack has %d frames, limit %zu", n,
             lim->max_frames);
  if(n == 0) {
    FUZZ_CHECK(!x->file && !x->func && !x->src && x->line == -1,
               "block with an empty stack has an innermost frame");
  }
  else {
    const cJSON *last = cJSON_GetArrayItem(st, n - 1);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(last, "file");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(last, "line");
    FUZZ_CHECK(x->file ? cJSON_IsString(file) && !strcmp(file->valuestring, x->file) : cJSON_IsNull(file),
               "block file differs from its stack's innermost frame");
    FUZZ_CHECK(x->line >= 0 ? cJSON_IsNumber(line) && line->valuedouble == (double)x->line
                            : cJSON_IsNull(line),
               "block line differs from its stack's innermost frame");
  }
  cJSON_Delete(st);
}

/* Nesting of arrays and objects in a parsed document: the root object is 1. */
static int tree_depth(const cJSON *v)
{
  if(!cJSON_IsArray(v) && !cJSON_IsObject(v))
    return 0;
  int deepest = 0;
  for(const cJSON *c = v->child; c; c = c->next) {
    int d = tree_depth(c);
    if(d > deepest)
      deepest = d;
  }
  return deepest + 1;
}

static void check_batch(const ingest_batch *b, const ingest_limits *lim)
{
  FUZZ_CHECK(b->batch && reference_id_ok(b->batch), "batch id not acceptable");
  FUZZ_CHECK(b->session && reference_id_ok(b->session), "session id not acceptable");
  FUZZ_CHECK(b->events <= lim->max_events, "%zu events, limit %zu", b->events, lim->max_events);
  size_t rows = b->ntasks + b->nsteps + b->nawaits + b->nblocks + b->nlags + b->ndones;
  FUZZ_CHECK(rows + (size_t)b->unknown <= b->events, "%zu rows + %lld unknown > %zu events", rows,
             (long long)b->unknown, b->events);
  FUZZ_CHECK(b->dropped >= 0 && b->unknown >= 0, "negative dropped or unknown count");
  /* max_t is the largest t + d: both below 2^53, so it stays below 2^54 */
  FUZZ_CHECK(b->max_t >= 0 && b->max_t <= 2 * (TWO_POW_53 - 1), "max_t = %lld out of range",
             (long long)b->max_t);
  for(int k = 0; k < INGEST_NKINDS; k++)
    check_time(b->max_d[k], "max_d");
  if(b->has_end) {
    check_time(b->end_t, "end.t");
    FUZZ_CHECK(b->end_t <= b->max_t, "end.t beyond max_t");
  }

  const ingest_meta *m = &b->meta;
  if(m->present) {
    check_str(m->name, lim->max_string, "meta.name");
    check_str(m->service, lim->max_string, "meta.service");
    check_str(m->host, lim->max_string, "meta.host");
    check_str(m->python, lim->max_string, "meta.python");
  }
  FUZZ_CHECK(m->pid == -1 || (m->pid >= 0 && m->pid < TWO_POW_53), "meta.pid out of range");
  if(m->started) {
    size_t n = strlen(m->started);
    FUZZ_CHECK(n >= 1 && n <= 19 && strspn(m->started, "0123456789") == n,
               "meta.started_unix_ns %s is not 1-19 digits", m->started);
    FUZZ_CHECK(m->started_ns == strtoll(m->started, NULL, 10), "meta.started_ns != started");
  }
  else
    FUZZ_CHECK(m->started_ns == -1, "started_ns without started");

  for(size_t i = 0; i < b->ntasks; i++) {
    const ingest_task *x = &b->tasks[i];
    check_id(x->id, "task.id");
    check_time(x->parent, "task.parent");
    check_span(b, -1, x->t, 0, "task.t");
    check_str(x->name, lim->max_string, "task.name");
    check_str(x->coro, lim->max_string, "task.coro");
  }
  for(size_t i = 0; i < b->nsteps; i++) {
    check_id(b->steps[i].id, "step.id");
    check_span(b, INGEST_STEP, b->steps[i].t, b->steps[i].d, "step");
  }
  for(size_t i = 0; i < b->nawaits; i++) {
    const ingest_await *x = &b->awaits[i];
    check_id(x->id, "await.id");
    check_span(b, INGEST_AWAIT, x->t, x->d, "await");
    check_line(x->line, "await.line");
    check_str(x->what, lim->max_string, "await.what");
    check_str(x->file, lim->max_string, "await.file");
    check_str(x->func, lim->max_string, "await.func");
  }
  size_t stacks_len = b->stacks ? strlen(b->stacks) : 0;
  for(size_t i = 0; i < b->nblocks; i++) {
    const ingest_block *x = &b->blocks[i];
    check_time(x->id, "block.id"); /* 0: outside any task */
    check_span(b, INGEST_BLOCK, x->t, x->d, "block");
    check_line(x->line, "block.line");
    check_str(x->file, lim->max_string, "block.file");
    check_str(x->func, lim->max_string, "block.func");
    check_str(x->src, lim->max_exc, "block.src");
    check_stack(b, x, lim, stacks_len);
  }
  for(size_t i = 0; i < b->nlags; i++)
    check_span(b, INGEST_LAG, b->lags[i].t, b->lags[i].d, "lag");
  for(size_t i = 0; i < b->ndones; i++) {
    const ingest_done *x = &b->dones[i];
    check_id(x->id, "done.id");
    check_span(b, -1, x->t, 0, "done.t");
    FUZZ_CHECK(x->state && (!strcmp(x->state, "ok") || !strcmp(x->state, "cancelled") ||
                            !strcmp(x->state, "error")),
               "done.state not one of ok, cancelled, error");
    check_str(x->exc, lim->max_exc, "done.exc");
  }
}

/* A parsed body: the document's depth, every batch of the chain (a multi-batch body's), and the
 * limits that hold for the body as a whole. */
static void check_body(const ingest_batch *first, const ingest_limits *lim)
{
  int depth = tree_depth(first->json_root);
  FUZZ_CHECK(depth <= lim->max_depth, "accepted a document nested %d deep, limit %d", depth,
             lim->max_depth);
  size_t n = 0, events = 0;
  for(const ingest_batch *b = first; b; b = b->next, n++) {
    FUZZ_CHECK(b == first || !b->json_root, "a later batch of a body owns a document");
    check_batch(b, lim);
    events += b->events;
  }
  FUZZ_CHECK(n == ingest_count(first), "ingest_count says %zu, the chain holds %zu", ingest_count(first), n);
  FUZZ_CHECK(n == 1 || n <= lim->max_batches, "%zu batches, limit %zu", n, lim->max_batches);
  FUZZ_CHECK(events <= lim->max_events, "%zu events in the body, limit %zu", events, lim->max_events);
}

/* 1 when s starts with a field path and ": ", e.g. "events[12].stack[0].file: ..." or
 * "body: not valid JSON (near byte 7)". */
static int starts_with_field_path(const char *s)
{
  static const char *const roots[] = {"body", "v", "batches", "batch", "session", "meta", "events"};
  size_t n = 0;
  for(size_t r = 0; r < sizeof(roots) / sizeof(roots[0]) && !n; r++) {
    size_t rl = strlen(roots[r]);
    if(!strncmp(s, roots[r], rl) && (s[rl] == '.' || s[rl] == '[' || s[rl] == ':'))
      n = rl;
  }
  if(!n)
    return 0;
  for(;;) {
    if(s[n] == '.') {
      size_t k = strspn(s + n + 1, "abcdefghijklmnopqrstuvwxyz_");
      if(!k)
        return 0;
      n += 1 + k;
    }
    else if(s[n] == '[') {
      size_t k = strspn(s + n + 1, "0123456789");
      if(!k || s[n + 1 + k] != ']')
        return 0;
      n += 2 + k;
    }
    else
      break;
  }
  return s[n] == ':' && s[n + 1] == ' ' && s[n + 2] != '\0';
}

/* A failure's detail: NUL-terminated inside its buffer, non-empty, naming a field; a JSON
 * position, when given, lies inside the body. */
static void check_detail(const char *detail, size_t dlen, size_t body_len)
{
  const char *nul = memchr(detail, '\0', dlen);
  FUZZ_CHECK(nul, "detail not NUL-terminated within its %zu bytes", dlen);
  FUZZ_CHECK(detail[0], "detail empty on failure");
  FUZZ_CHECK(starts_with_field_path(detail), "detail does not start with a field path: %s", detail);
  const char *at = strstr(detail, "(near byte ");
  if(at) {
    unsigned long long pos = strtoull(at + 11, NULL, 10);
    FUZZ_CHECK(pos <= body_len, "JSON position %llu beyond the %zu-byte body", pos, body_len);
  }
}

/* The feedback signature: which rule rejected the input (digits dropped, so events[3] and
 * events[4] count as one), or which kinds of rows an accepted batch had. */
static void note_signature(int pass, int rc, const char *detail, const ingest_batch *b)
{
  if(!fuzz_feedback)
    return;
  char sig[160];
  size_t n = (size_t)snprintf(sig, sizeof(sig), "ingest%d:%d:", pass, rc);
  if(rc == 0) {
    snprintf(sig + n, sizeof(sig) - n, "ok t%d s%d a%d b%d l%d d%d m%d e%d u%d x%d", b->ntasks > 0,
             b->nsteps > 0, b->nawaits > 0, b->nblocks > 0, b->nlags > 0, b->ndones > 0,
             b->meta.present, b->has_end, b->unknown > 0, b->dropped > 0);
  }
  else {
    for(const char *d = detail; *d && n + 1 < sizeof(sig); d++)
      if(*d < '0' || *d > '9')
        sig[n++] = *d;
    sig[n] = '\0';
  }
  fuzz_feedback(sig);
}

/* One parse under the given limits and detail size; every path ends in ingest_free. */
static void parse_once(int pass, const char *body, size_t len, const ingest_limits *lim, size_t dlen)
{
  char *detail = malloc(dlen); /* exact size, so ASan sees any write past it */
  if(!detail)
    return;
  memset(detail, 'Z', dlen);
  ingest_batch *b = (ingest_batch *)(uintptr_t)1; /* must be overwritten on every path */
  int rc = PARSE(body, len, lim, &b, detail, dlen);
  FUZZ_CHECK(rc == 0 || rc == LS_EINVAL || rc == LS_ENOMEM || rc == LS_ETOOBIG, "ingest_parse returned %d", rc);
  if(rc == 0) {
    FUZZ_CHECK(b != NULL && b != (ingest_batch *)(uintptr_t)1, "success without a batch");
    check_body(b, lim);
  }
  else {
    FUZZ_CHECK(b == NULL, "failure (%d) left *out set", rc);
    if(rc == LS_EINVAL && dlen >= 256)
      check_detail(detail, dlen, len);
    else if(rc == LS_EINVAL)
      FUZZ_CHECK(memchr(detail, '\0', dlen), "detail not NUL-terminated in %zu bytes", dlen);
  }
  note_signature(pass, rc, detail, b);
  if(rc == 0)
    ingest_free(b);
  free(detail);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy: ingest_parse is given a length, never a terminator, and ASan flags any
   * read past it. */
  char *body = calloc(size ? size : 1, 1);
  if(!body)
    return 0;
  if(size)
    memcpy(body, data, size);

  /* The validators on their own, against the references, on the raw bytes (and the bytes up to
   * the first NUL as an id). */
  FUZZ_CHECK(utf8_valid(body, size) == reference_utf8_ok(data, size),
             "utf8_valid disagrees with the Unicode table on %zu bytes", size);
  if(size <= 200) {
    char id[201];
    memcpy(id, data, size);
    id[size] = '\0';
    FUZZ_CHECK(ingest_id_ok(id) == reference_id_ok(id), "ingest_id_ok(\"%s\") = %d", id,
               ingest_id_ok(id));
  }

  ingest_limits lim;
  ingest_default_limits(&lim);
  parse_once(0, body, size, &lim, 256); /* what http.c does */

  /* Tight limits reach the "too many / too long / too deep" paths with small inputs, and a
   * tiny detail buffer checks that messages are cut, not overrun. */
  ingest_limits tight = {.max_events = 4, .max_string = 8, .max_exc = 12, .max_frames = 2,
                         .max_depth = 5, .max_batches = 2};
  parse_once(1, body, size, &tight, 256);
  parse_once(2, body, size, &tight, 9);

  free(body);
  return 0;
}
