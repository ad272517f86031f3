/* ingest.c — ingest contract v1: JSON bytes (one batch, or several under "batches") → validated
 * rows (ingest.h). Names the first bad field precisely and stores nothing itself; what both body
 * forms share (limits, errors, checks, stacks, freeing) is ingest_batch.c's, the binary form is
 * ingest_records.c's, SQL is store_put.c's, queueing writer.c's. */
#include "ingest.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ingest_internal.h"
#include "jbuf.h"

#define TWO_POW_53 9007199254740992.0

/* cJSON allocates one block per node; a 1000-event batch is ~8000 of them, and malloc/free
 * showed up as a third of the server's ingest profile. While ingest_parse runs, cJSON's hooks
 * take memory from the batch's own arena instead, and the whole tree is freed with it. The
 * hooks are process-wide (cJSON has no other kind), so the arena is per thread and set only
 * for the duration of one parse: every other cJSON use keeps plain malloc/free. */
static _Thread_local arena *parse_arena;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void *hook_malloc(size_t n)
{
  return parse_arena ? arena_alloc(parse_arena, n) : malloc(n);
}

static void hook_free(void *p)
{
  if(!parse_arena) /* nodes from the arena die with it */
    free(p);
}

static void install_hooks(void)
{
  cJSON_Hooks h = {hook_malloc, hook_free};
  cJSON_InitHooks(&h);
}

/* What prescan stops at: inside a string, its end or an escape; outside, a string's start and the
 * brackets. Every other byte is passed over in a tight loop, strings eight bytes at a time. (Its
 * byte-by-byte predecessor was ~5% of the server's instructions on a burst of small sessions;
 * this one ~4.5%: the cost is per token, and such bodies' tokens are short. ingest_cg.sh.) */
enum { PS_PLAIN, PS_QUOTE, PS_ESCAPE, PS_OPEN, PS_CLOSE };
static const unsigned char ps_class[256] = {['"'] = PS_QUOTE, ['\\'] = PS_ESCAPE, ['['] = PS_OPEN, ['{'] = PS_OPEN,
                                            [']'] = PS_CLOSE, ['}'] = PS_CLOSE};

/* 1 when one of the 8 bytes of w is '"' or a backslash (the classic test for a zero byte, on w
 * with each of the two characters xored away). */
static int has_quote_or_escape(uint64_t w)
{
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t q = w ^ (ones * '"'), e = w ^ (ones * '\\');
  return (((q - ones) & ~q) | ((e - ones) & ~e)) & highs ? 1 : 0;
}

/* One pass over the body before it is parsed (it was two): the deepest nesting of [ and { outside
 * strings in *deepest, which bounds the parser's recursion before it starts (counting stops past
 * `limit`), and in *nul the byte offset of the first \u0000 escape inside a string, or -1. cJSON
 * keeps a string NUL-terminated, so "b\u0000A" would read as "b": two batch ids would be the same
 * batch and any name would be cut short without a word. No field of the contract can carry U+0000,
 * so such a batch is refused. Backslashes only occur inside strings in valid JSON (anything else
 * fails later). A body nested too deep may leave *nul unsearched: that error comes first. */
static void prescan(const char *s, size_t n, int limit, int *deepest, long *nul)
{
  const unsigned char *u = (const unsigned char *)s;
  int depth = 0;
  *deepest = 0;
  *nul = -1;
  size_t i = 0;
  for(;;) {
    /* outside strings */
    while(i < n && ps_class[u[i]] == PS_PLAIN)
      i++;
    if(i >= n)
      return;
    unsigned char c = ps_class[u[i++]];
    if(c == PS_OPEN) {
      if(++depth > *deepest && (*deepest = depth) > limit)
        return;
      continue;
    }
    if(c == PS_CLOSE) {
      depth--;
      continue;
    }
    if(c != PS_QUOTE)
      continue; /* a backslash outside a string: not JSON, which the parser says */
    /* inside a string, from i: eight bytes at a time while none is a quote or an escape */
    for(;;) {
      while(i + 8 <= n) {
        uint64_t w;
        memcpy(&w, u + i, 8);
        if(has_quote_or_escape(w))
          break;
        i += 8;
      }
      while(i < n && u[i] != '"' && u[i] != '\\')
        i++;
      if(i >= n)
        return;
      if(u[i] == '"') {
        i++;
        break;
      }
      if(*nul < 0 && i + 5 < n && u[i + 1] == 'u' && !memcmp(u + i + 2, "0000", 4))
        *nul = (long)i;
      i += 2; /* the escape and the escaped character, which may be a quote */
    }
  }
}

/* An integer in [lo, 2^53). `where`/`field` name it in errors. */
static int get_int(parser *p, const cJSON *v, const place *where, const char *field, double lo,
                   int64_t *out)
{
  if(!v)
    return ing_fail_at(p, where, "%s: missing", field);
  double d = v->valuedouble;
  if(!cJSON_IsNumber(v) || d != floor(d) || d < lo || d >= TWO_POW_53) {
    if(lo > 0)
      return ing_fail_at(p, where, "%s: expected a positive integer below 2^53", field);
    return ing_fail_at(p, where, "%s: expected an integer in [0, 2^53)", field);
  }
  *out = (int64_t)d;
  return 0;
}

/* A string given as an index into the batch's strings: checked there once; here its bounds and
 * the field's own length limit. */
static int get_str_ref(parser *p, const cJSON *v, const place *where, const char *field, size_t max,
                       const char **out)
{
  double d = v->valuedouble;
  if(!p->strs || d != floor(d) || d < 0 || d >= (double)p->nstrs) {
    if(!p->strs) /* meta's fields, or a batch without strings: as before strings existed */
      return ing_fail_at(p, where, "%s: expected a string", field);
    return ing_fail_at(p, where, "%s: expected a string, or an index into strings (0 to %zu)", field, p->nstrs - 1);
  }
  size_t i = (size_t)d;
  if(p->strs_len[i] > max)
    return ing_fail_at(p, where, "%s: strings[%zu] is longer than %zu bytes", field, i, max);
  *out = p->strs[i];
  return 0;
}

/* An optional string (absent or null → NULL) of at most max bytes of UTF-8, or the index of one
 * in the batch's strings. */
static int get_str(parser *p, const cJSON *v, const place *where, const char *field, size_t max,
                   const char **out)
{
  *out = NULL;
  if(!v || cJSON_IsNull(v))
    return 0;
  if(cJSON_IsNumber(v))
    return get_str_ref(p, v, where, field, max, out);
  if(!cJSON_IsString(v) || !v->valuestring)
    return ing_fail_at(p, where, "%s: expected a string", field);
  switch(ing_text_check(v->valuestring, strlen(v->valuestring), max)) {
  case TEXT_LONG: return ing_fail_at(p, where, "%s: longer than %zu bytes", field, max);
  case TEXT_UTF8: return ing_fail_at(p, where, "%s: not valid UTF-8", field);
  default: break;
  }
  *out = v->valuestring;
  return 0;
}

/* The fields an event may carry, found in one walk over its members. */
typedef struct fields {
  const cJSON *k, *id, *parent, *name, *coro, *t, *d, *what, *file, *line, *func, *stack, *state,
    *status, *exc, *n, *from_session, *from_task, *stack_t;
} fields;

/* A member named more than once counts the first time, as cJSON_GetObjectItem finds it (the
 * counting walk in parse_doc relies on both agreeing about "k"). */
#define FIRST(slot) do { if(!f->slot) f->slot = c; } while(0)
static void collect(const cJSON *ev, fields *f)
{
  memset(f, 0, sizeof(*f));
  for(const cJSON *c = ev->child; c; c = c->next) {
    const char *s = c->string;
    if(!s)
      continue;
    switch(s[0]) {
    case 'k': if(!s[1]) FIRST(k); break;
    case 'i': if(!strcmp(s, "id")) FIRST(id); break;
    case 'p': if(!strcmp(s, "parent")) FIRST(parent); break;
    case 'n':
      if(!s[1]) FIRST(n);
      else if(!strcmp(s, "name")) FIRST(name);
      break;
    case 'c': if(!strcmp(s, "coro")) FIRST(coro); break;
    case 't': if(!s[1]) FIRST(t); break;
    case 'd': if(!s[1]) FIRST(d); break;
    case 'w': if(!strcmp(s, "what")) FIRST(what); break;
    case 'f':
      if(!strcmp(s, "file")) FIRST(file);
      else if(!strcmp(s, "func")) FIRST(func);
      else if(!strcmp(s, "from_session")) FIRST(from_session);
      else if(!strcmp(s, "from_task")) FIRST(from_task);
      break;
    case 'l': if(!strcmp(s, "line")) FIRST(line); break;
    case 's':
      if(!strcmp(s, "stack")) FIRST(stack);
      else if(!strcmp(s, "stack_t")) FIRST(stack_t);
      else if(!strcmp(s, "state")) FIRST(state);
      else if(!strcmp(s, "status")) FIRST(status);
      break;
    case 'e': if(!strcmp(s, "exc")) FIRST(exc); break;
    default: break;
    }
  }
}
#undef FIRST

typedef enum kind { K_TASK, K_STEP, K_AWAIT, K_BLOCK, K_LAG, K_DONE, K_DROP, K_END, K_UNKNOWN } kind;
_Static_assert(sizeof(((parser *)0)->cap) == sizeof(size_t) * (K_UNKNOWN + 1), "one cap per kind");

static kind kind_of(const char *s)
{
  switch(s[0]) {
  case 't': if(!strcmp(s, "task")) return K_TASK; break;
  case 's': if(!strcmp(s, "step")) return K_STEP; break;
  case 'a': if(!strcmp(s, "await")) return K_AWAIT; break;
  case 'b': if(!strcmp(s, "block")) return K_BLOCK; break;
  case 'l': if(!strcmp(s, "lag")) return K_LAG; break;
  case 'd':
    if(!strcmp(s, "done")) return K_DONE;
    if(!strcmp(s, "drop")) return K_DROP;
    break;
  case 'e': if(!strcmp(s, "end")) return K_END; break;
  default: break;
  }
  return K_UNKNOWN;
}

static int parse_meta(parser *p, const cJSON *m, ingest_meta *meta)
{
  meta->pid = -1;
  meta->loop = -1;
  meta->started_ns = -1;
  meta->fraction = 0;
  if(!m || cJSON_IsNull(m))
    return 0;
  if(!cJSON_IsObject(m))
    return ing_fail(p, "meta: expected an object");
  meta->present = 1;
  const place in_meta = {IN_META, NO_FRAME};
  size_t max = p->lim->max_string;
  int rc;
  if((rc = get_str(p, cJSON_GetObjectItemCaseSensitive(m, "name"), &in_meta, "name", max, &meta->name)) ||
     (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(m, "service"), &in_meta, "service", max, &meta->service)) ||
     (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(m, "host"), &in_meta, "host", max, &meta->host)) ||
     (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(m, "python"), &in_meta, "python", max, &meta->python)) ||
     (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(m, "route"), &in_meta, "route", max, &meta->route)))
    return rc;
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(m, "pid");
  if(pid && !cJSON_IsNull(pid) && (rc = get_int(p, pid, &in_meta, "pid", 0, &meta->pid)))
    return rc;
  const cJSON *loop = cJSON_GetObjectItemCaseSensitive(m, "loop");
  if(loop && !cJSON_IsNull(loop) && (rc = get_int(p, loop, &in_meta, "loop", 0, &meta->loop)))
    return rc;
  /* A share of requests: (0, 1]. Not 0, which records nothing, so no session can carry it. */
  const cJSON *fr = cJSON_GetObjectItemCaseSensitive(m, "fraction");
  if(fr && !cJSON_IsNull(fr)) {
    if(!cJSON_IsNumber(fr) || !(fr->valuedouble > 0 && fr->valuedouble <= 1))
      return ing_fail(p, "meta.fraction: expected a number above 0 and at most 1");
    meta->fraction = fr->valuedouble;
  }
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "started_unix_ns");
  if(st && !cJSON_IsNull(st)) {
    const char *s = cJSON_IsString(st) ? st->valuestring : NULL;
    size_t n = s ? strlen(s) : 0;
    int ok = n > 0 && n <= 19;
    int64_t v = 0;
    for(size_t i = 0; ok && i < n; i++) {
      if(s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
        ok = 0;
      else
        v = v * 10 + (s[i] - '0');
    }
    if(!ok)
      return ing_fail(p, "meta.started_unix_ns: expected a decimal string of at most 19 digits");
    meta->started = s;
    meta->started_ns = v;
  }
  return 0;
}

int ing_meta_text(parser *p, const char *text, size_t n, arena *a, ingest_meta *meta)
{
  int deepest;
  long nul;
  prescan(text, n, p->lim->max_depth, &deepest, &nul);
  if(deepest > p->lim->max_depth)
    return ing_fail(p, "meta: nested deeper than %d levels", p->lim->max_depth);
  if(nul >= 0)
    return ing_fail(p, "meta: a string holds \\u0000 (near byte %ld of meta): no text may contain U+0000", nul);
  pthread_once(&hooks_once, install_hooks);
  const char *end = NULL;
  arena *saved = parse_arena;
  parse_arena = a;
  cJSON *m = cJSON_ParseWithLengthOpts(text, n, &end, 0);
  parse_arena = saved;
  if(!m) {
    if(a->failed)
      return ing_arena_error(p, a);
    size_t at = end && end >= text ? (size_t)(end - text) : 0;
    return ing_fail(p, "meta: not valid JSON (near byte %zu of meta)", at);
  }
  const char **strs = p->strs; /* meta's strings are its own: none names the strings table */
  size_t nstrs = p->nstrs;
  p->strs = NULL;
  p->nstrs = 0;
  int rc = parse_meta(p, m, meta);
  p->strs = strs;
  p->nstrs = nstrs;
  return rc;
}

/* Re-encodes a block's stack as JSON text into `stacks`, checking every frame. */
static int parse_stack(parser *p, const cJSON *st, const place *where, ingest_block *blk,
                       jbuf *stacks)
{
  if(st && !cJSON_IsNull(st) && !cJSON_IsArray(st))
    return ing_fail_at(p, where, "stack: expected an array");
  ing_stack_begin(stacks, blk);
  if(!st || cJSON_IsNull(st))
    return ing_stack_end(stacks, blk);
  size_t nframes = 0;
  for(const cJSON *fr = st->child; fr; fr = fr->next, nframes++) {
    if(nframes >= p->lim->max_frames)
      return ing_fail_at(p, where, "stack: more than %zu frames", p->lim->max_frames);
    const place fw = {where->ev, nframes};
    if(!cJSON_IsObject(fr))
      return ing_fail_at(p, &fw, ": expected an object");
    const char *file, *func, *src;
    int64_t line = -1;
    int rc;
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(fr, "line");
    if((rc = get_str(p, cJSON_GetObjectItemCaseSensitive(fr, "file"), &fw, ".file", p->lim->max_string, &file)) ||
       (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(fr, "func"), &fw, ".func", p->lim->max_string, &func)) ||
       (rc = get_str(p, cJSON_GetObjectItemCaseSensitive(fr, "src"), &fw, ".src", p->lim->max_exc, &src)))
      return rc;
    if(lv && !cJSON_IsNull(lv) && (rc = get_int(p, lv, &fw, ".line", 0, &line)))
      return rc;
    ing_stack_frame(stacks, blk, nframes, file, line, func, src);
  }
  return ing_stack_end(stacks, blk);
}

static int parse_event(parser *p, ingest_batch *b, const cJSON *ev, size_t i, jbuf *stacks)
{
  const place here = {i, NO_FRAME}, *where = &here;
  if(!cJSON_IsObject(ev))
    return ing_fail(p, "events[%zu]: expected an object", i);
  fields f;
  collect(ev, &f);
  if(!f.k)
    return ing_fail_at(p, where, "k: missing");
  if(!cJSON_IsString(f.k) || !f.k->valuestring)
    return ing_fail_at(p, where, "k: expected a string");
  size_t smax = p->lim->max_string;
  int rc = 0;
  kind k = kind_of(f.k->valuestring);
  size_t used[] = {b->ntasks, b->nsteps, b->nawaits, b->nblocks, b->nlags, b->ndones, 0, 0, 0};
  if(k < K_DROP && used[k] >= p->cap[k]) /* cannot happen: both walks read the first "k" */
    return ing_fail_at(p, where, "k: inconsistent");
  switch(k) {
  case K_TASK: {
    ingest_task *x = &b->tasks[b->ntasks];
    x->parent = 0;
    if((rc = get_int(p, f.id, where, "id", 1, &x->id)) ||
       (f.parent && !cJSON_IsNull(f.parent) && (rc = get_int(p, f.parent, where, "parent", 0, &x->parent))) ||
       (rc = get_int(p, f.t, where, "t", 0, &x->t)) ||
       (rc = get_str(p, f.name, where, "name", smax, &x->name)) ||
       (rc = get_str(p, f.coro, where, "coro", smax, &x->coro)))
      return rc;
    if((rc = ing_see_span(p, b, where, x->t, 0, -1)))
      return rc;
    b->ntasks++;
    break;
  }
  case K_STEP: {
    ingest_step *x = &b->steps[b->nsteps];
    if((rc = get_int(p, f.id, where, "id", 1, &x->id)) || (rc = get_int(p, f.t, where, "t", 0, &x->t)) ||
       (rc = get_int(p, f.d, where, "d", 0, &x->d)))
      return rc;
    if((rc = ing_see_span(p, b, where, x->t, x->d, INGEST_STEP)))
      return rc;
    b->nsteps++;
    break;
  }
  case K_AWAIT: {
    ingest_await *x = &b->awaits[b->nawaits];
    x->line = -1;
    if((rc = get_int(p, f.id, where, "id", 1, &x->id)) || (rc = get_int(p, f.t, where, "t", 0, &x->t)) ||
       (rc = get_int(p, f.d, where, "d", 0, &x->d)) ||
       (rc = get_str(p, f.what, where, "what", smax, &x->what)) ||
       (rc = get_str(p, f.file, where, "file", smax, &x->file)) ||
       (rc = get_str(p, f.func, where, "func", smax, &x->func)) ||
       (f.line && !cJSON_IsNull(f.line) && (rc = get_int(p, f.line, where, "line", 0, &x->line))))
      return rc;
    if((rc = ing_see_span(p, b, where, x->t, x->d, INGEST_AWAIT)))
      return rc;
    b->nawaits++;
    break;
  }
  case K_BLOCK: {
    ingest_block *x = &b->blocks[b->nblocks];
    memset(x, 0, sizeof(*x));
    /* A block may happen in a plain callback, outside any task: id 0 or absent. */
    if((f.id && !cJSON_IsNull(f.id) && (rc = get_int(p, f.id, where, "id", 0, &x->id))) ||
       (rc = get_int(p, f.t, where, "t", 0, &x->t)) || (rc = get_int(p, f.d, where, "d", 0, &x->d)) ||
       (rc = parse_stack(p, f.stack, where, x, stacks)))
      return rc;
    /* When the stack was taken (additive to v1): ns after t, within the block. A late stack (the
     * watchdog thread got the CPU long after it asked) may name code that ran after the blocking
     * call in the same step; with stack_t the page can say so. Absent or null: unknown. */
    x->stack_t = -1;
    if(f.stack_t && !cJSON_IsNull(f.stack_t)) {
      if((rc = get_int(p, f.stack_t, where, "stack_t", 0, &x->stack_t)))
        return rc;
      if(x->stack_t > x->d)
        return ing_fail_at(p, where, "stack_t: expected an integer in [0, d]: the stack is taken within the block");
    }
    /* From elsewhere (additive to v1): from_session present, a session id or null (none). */
    if(f.from_session) {
      x->elsewhere = 1;
      if(!cJSON_IsNull(f.from_session)) {
        if(!cJSON_IsString(f.from_session) || !ingest_id_ok(f.from_session->valuestring))
          return ing_fail_at(p, where, "from_session: expected null or 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
        x->from_session = f.from_session->valuestring;
      }
      if(f.from_task && !cJSON_IsNull(f.from_task) &&
         (rc = get_int(p, f.from_task, where, "from_task", 0, &x->from_task)))
        return rc;
    }
    if((rc = ing_see_span(p, b, where, x->t, x->d, INGEST_BLOCK)))
      return rc;
    b->nblocks++;
    break;
  }
  case K_LAG: {
    ingest_lag *x = &b->lags[b->nlags];
    if((rc = get_int(p, f.t, where, "t", 0, &x->t)) || (rc = get_int(p, f.d, where, "d", 0, &x->d)))
      return rc;
    if((rc = ing_see_span(p, b, where, x->t, x->d, INGEST_LAG)))
      return rc;
    b->nlags++;
    break;
  }
  case K_DONE: {
    ingest_done *x = &b->dones[b->ndones];
    if((rc = get_int(p, f.id, where, "id", 1, &x->id)) || (rc = get_int(p, f.t, where, "t", 0, &x->t)))
      return rc;
    if(!f.state)
      return ing_fail_at(p, where, "state: missing");
    const char *st = cJSON_IsString(f.state) ? f.state->valuestring : NULL;
    if(!st || (strcmp(st, "ok") && strcmp(st, "cancelled") && strcmp(st, "error")))
      return ing_fail_at(p, where, "state: expected one of ok, cancelled, error");
    x->state = st;
    if((rc = get_str(p, f.exc, where, "exc", p->lim->max_exc, &x->exc)))
      return rc;
    x->status = -1; /* optional: absent or null */
    if(f.status && !cJSON_IsNull(f.status)) {
      double v = f.status->valuedouble;
      if(!cJSON_IsNumber(f.status) || v != floor(v) || v < 100 || v > 599)
        return ing_fail_at(p, where, "status: expected an integer in [100, 599]");
      x->status = (int64_t)v;
    }
    if((rc = ing_see_span(p, b, where, x->t, 0, -1)))
      return rc;
    b->ndones++;
    break;
  }
  case K_DROP: {
    int64_t n = 0;
    if((rc = get_int(p, f.n, where, "n", 0, &n)))
      return rc;
    ing_add_drop(b, n);
    break;
  }
  case K_END: {
    int64_t t = 0;
    if((rc = get_int(p, f.t, where, "t", 0, &t)))
      return rc;
    if((rc = ing_add_end(p, b, where, t)))
      return rc;
    break;
  }
  case K_UNKNOWN:
    b->unknown++;
    break;
  }
  return 0;
}

/* The batch's "strings" (absent or null: none), each checked here once: a string of UTF-8 of at
 * most max_exc bytes (the longest any field takes; a field with a lower limit checks the length
 * where it names the string). The table lives in the batch's arena. */
static int parse_strings(parser *p, const cJSON *list, arena *a)
{
  p->strs = NULL;
  p->strs_len = NULL;
  p->nstrs = 0;
  if(!list || cJSON_IsNull(list))
    return 0;
  if(!cJSON_IsArray(list))
    return ing_fail(p, "strings: expected an array of strings");
  size_t n = 0;
  for(const cJSON *s = list->child; s; s = s->next)
    n++;
  if(!n)
    return 0;
  const char **strs = ing_rows(a, n, sizeof(*strs));
  uint32_t *lens = strs ? ing_rows(a, n, sizeof(*lens)) : NULL;
  if(!lens)
    return ing_arena_error(p, a);
  size_t i = 0;
  for(const cJSON *s = list->child; s; s = s->next, i++) {
    if(!cJSON_IsString(s) || !s->valuestring)
      return ing_fail(p, "strings[%zu]: expected a string", i);
    size_t len = strlen(s->valuestring);
    switch(ing_text_check(s->valuestring, len, p->lim->max_exc)) {
    case TEXT_LONG: return ing_fail(p, "strings[%zu]: longer than %zu bytes", i, p->lim->max_exc);
    case TEXT_UTF8: return ing_fail(p, "strings[%zu]: not valid UTF-8", i);
    default: break;
    }
    strs[i] = s->valuestring;
    lens[i] = (uint32_t)len;
  }
  p->strs = strs;
  p->strs_len = lens;
  p->nstrs = n;
  return 0;
}

static int parse_doc(parser *p, const cJSON *root, ingest_batch *b)
{
  if(!cJSON_IsObject(root))
    return ing_fail(p, "body: expected a JSON object");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
  if(!v)
    return ing_fail(p, "v: missing");
  if(!cJSON_IsNumber(v) || v->valuedouble != 1.0)
    return ing_fail(p, "v: expected 1");
  const cJSON *batch = cJSON_GetObjectItemCaseSensitive(root, "batch");
  const cJSON *session = cJSON_GetObjectItemCaseSensitive(root, "session");
  if(!batch)
    return ing_fail(p, "batch: missing");
  if(!cJSON_IsString(batch) || !ingest_id_ok(batch->valuestring))
    return ing_fail(p, "batch: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  if(!session)
    return ing_fail(p, "session: missing");
  if(!cJSON_IsString(session) || !ingest_id_ok(session->valuestring))
    return ing_fail(p, "session: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
  b->batch = batch->valuestring;
  b->session = session->valuestring;
  p->strs = NULL; /* meta's strings are its own: none names the strings table */
  p->nstrs = 0;
  int rc = parse_meta(p, cJSON_GetObjectItemCaseSensitive(root, "meta"), &b->meta);
  if(rc)
    return rc;
  const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
  if(!events)
    return ing_fail(p, "events: missing");
  if(!cJSON_IsArray(events))
    return ing_fail(p, "events: expected an array");
  if((rc = parse_strings(p, cJSON_GetObjectItemCaseSensitive(root, "strings"), b->json_arena)))
    return rc;

  /* First walk: count each kind so the row arrays are allocated once, exactly. */
  size_t count[K_UNKNOWN + 1] = {0};
  size_t n = 0;
  for(const cJSON *ev = events->child; ev; ev = ev->next, n++) {
    if(p->events_seen + n >= p->lim->max_events)
      return p->in_batch == NO_BATCH
        ? ing_fail(p, "events: more than %zu events in one batch", p->lim->max_events)
        : ing_fail(p, "events: more than %zu events in one body (its batches together)", p->lim->max_events);
    const cJSON *k = cJSON_IsObject(ev) ? cJSON_GetObjectItemCaseSensitive(ev, "k") : NULL;
    if(k && cJSON_IsString(k) && k->valuestring)
      count[kind_of(k->valuestring)]++;
  }
  b->events = n;
  memcpy(p->cap, count, sizeof(p->cap));
  /* The rows live in the batch's arena, so they count against its cap and budget too. */
  if((count[K_TASK] && !(b->tasks = ing_rows(b->json_arena, count[K_TASK], sizeof(*b->tasks)))) ||
     (count[K_STEP] && !(b->steps = ing_rows(b->json_arena, count[K_STEP], sizeof(*b->steps)))) ||
     (count[K_AWAIT] && !(b->awaits = ing_rows(b->json_arena, count[K_AWAIT], sizeof(*b->awaits)))) ||
     (count[K_BLOCK] && !(b->blocks = ing_rows(b->json_arena, count[K_BLOCK], sizeof(*b->blocks)))) ||
     (count[K_LAG] && !(b->lags = ing_rows(b->json_arena, count[K_LAG], sizeof(*b->lags)))) ||
     (count[K_DONE] && !(b->dones = ing_rows(b->json_arena, count[K_DONE], sizeof(*b->dones)))))
    return ing_arena_error(p, b->json_arena);

  jbuf stacks;
  jbuf_init(&stacks, 64u << 20);
  size_t i = 0;
  for(const cJSON *ev = events->child; ev; ev = ev->next, i++) {
    rc = parse_event(p, b, ev, i, &stacks);
    if(rc)
      break;
  }
  if(!rc && jbuf_status(&stacks))
    rc = jbuf_status(&stacks) == LS_ENOMEM ? LS_ENOMEM : ing_fail(p, "events: block stacks too large");
  size_t held = stacks.cap;
  b->stacks = jbuf_take(&stacks, NULL);
  if(!rc && held && arena_charge(b->json_arena, held))
    rc = ing_arena_error(p, b->json_arena); /* the stack text counts too (freed with the batch) */
  return rc;
}

/* A multi-batch body: {"v": 1, "batches": [batch, ...]}. Each element is a whole v1 batch,
 * checked by parse_doc exactly as a body of its own would be (one definition of a valid batch);
 * every one is checked before the caller sees any, and the limits hold for the body as a whole:
 * one arena (max_tree, the budget) and max_events over all its batches. */
static int parse_batches(parser *p, const cJSON *root, const cJSON *list, ingest_batch *first)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
  if(!v)
    return ing_fail(p, "v: missing");
  if(!cJSON_IsNumber(v) || v->valuedouble != 1.0)
    return ing_fail(p, "v: expected 1");
  if(!cJSON_IsArray(list))
    return ing_fail(p, "batches: expected an array");
  size_t n = 0;
  for(const cJSON *el = list->child; el; el = el->next)
    if(++n > p->lim->max_batches)
      return ing_fail(p, "batches: more than %zu batches in one body", p->lim->max_batches);
  if(!n)
    return ing_fail(p, "batches: expected at least one batch");
  ingest_batch *b = first;
  size_t i = 0;
  for(const cJSON *el = list->child; el; el = el->next, i++) {
    if(!cJSON_IsObject(el))
      return ing_fail(p, "batches[%zu]: expected an object (a batch)", i);
    if(i) {
      /* linked before it is parsed, so ingest_free finds its stack text even on a failure */
      ingest_batch *nb = ing_rows(first->json_arena, 1, sizeof(*nb));
      if(!nb)
        return ing_arena_error(p, first->json_arena);
      nb->json_arena = first->json_arena;
      b->next = nb;
      b = nb;
    }
    p->in_batch = i;
    int rc = parse_doc(p, el, b);
    p->in_batch = NO_BATCH;
    if(rc)
      return rc;
    p->events_seen += b->events;
  }
  return 0;
}

int ingest_parse(const char *body, size_t len, const ingest_limits *lim, ingest_batch **out,
                 char *detail, size_t detail_len)
{
  parser p = {lim, detail, detail_len, {0}, NO_BATCH, 0, NULL, NULL, 0};
  *out = NULL;
  if(detail && detail_len)
    detail[0] = '\0';
  int deepest;
  long nul;
  prescan(body, len, lim->max_depth, &deepest, &nul);
  if(deepest > lim->max_depth)
    return ing_fail(&p, "body: nested deeper than %d levels", lim->max_depth);
  if(nul >= 0)
    return ing_fail(&p, "body: a string holds \\u0000 (near byte %ld): no text may contain U+0000", nul);
  ingest_batch *b = calloc(1, sizeof(*b));
  if(!b)
    return LS_ENOMEM;
  arena *mem = malloc(sizeof(*mem));
  if(!mem) {
    free(b);
    return LS_ENOMEM;
  }
  arena_init(mem);
  arena_limit(mem, lim->max_tree, lim->budget);
  b->json_arena = mem;
  pthread_once(&hooks_once, install_hooks);
  int rc_fail;
  const char *end = NULL;
  parse_arena = mem;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  parse_arena = NULL;
  if(!root) {
    if(mem->failed) {
      rc_fail = ing_arena_error(&p, mem);
      ingest_free(b);
      return rc_fail;
    }
    ingest_free(b);
    /* cJSON reports allocation failures as parse errors: the arena tells them apart */
    size_t at = end && end >= body ? (size_t)(end - body) : 0;
    return ing_fail(&p, "body: not valid JSON (near byte %zu)", at);
  }
  b->json_root = root;
  /* "batches" without "batch": a multi-batch body. With both, "batches" is an unknown field of
   * a single batch, ignored as version 1 says. */
  const cJSON *list = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "batches") : NULL;
  int rc = list && !cJSON_GetObjectItemCaseSensitive(root, "batch") ? parse_batches(&p, root, list, b)
                                                                     : parse_doc(&p, root, b);
  if(rc) {
    ingest_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

void *ingest_json_parse_in(arena *a, const char *text, size_t len)
{
  pthread_once(&hooks_once, install_hooks);
  arena *saved = parse_arena; /* NULL: nobody on this thread parses into an arena now */
  parse_arena = a;
  cJSON *root = cJSON_ParseWithLength(text, len);
  parse_arena = saved;
  return root;
}
