/* lsencode.c — the stored record format of one event and its v1 JSON encoding. The store
 * (lsstore.c) only copies records; the sender (lssend.c) wraps encoded events into a batch. */
#include <string.h>

#include "lscore.h"

/* A record: header, then each string as u32 len + bytes, then for a block its frames (int32 line
 * and three strings each). A block keeps from_task in parent, elsewhere in state and
 * from_session as its one string.
 * Records are written and read with memcpy, so they need no alignment. */
typedef struct rec_hdr {
  uint32_t size;
  uint8_t kind, state;
  uint16_t nstr;
  int32_t line;      /* the await's line, a block's frame count, or a done's HTTP status */
  uint32_t pad;      /* always 0: no implicit padding, so a header written field by field has
                      * no indeterminate bytes */
  uint64_t id, parent, t, d;
} rec_hdr;

/* Kinds whose record is the header alone (no strings, no frames): the common step, lag and end. */
static int bare_kind(int kind) { return kind == LS_K_STEP || kind == LS_K_LAG || kind == LS_K_END; }

/* Cut at LS_MAX_STR, backing up to a UTF-8 boundary so the cut never splits a character. */
static size_t str_len(ls_str s) {
  if (!s.p) return 0;
  size_t n = s.n;
  if (n <= LS_MAX_STR) return n;
  n = LS_MAX_STR;
  while (n > 0 && (((const unsigned char *)s.p)[n] & 0xC0) == 0x80) n--;
  return n;
}

static int event_strings(const ls_event *ev, ls_str *out) {
  int n = 0;
  switch (ev->kind) {
  case LS_K_TASK: out[n++] = ev->name; out[n++] = ev->coro; break;
  case LS_K_AWAIT: out[n++] = ev->what; out[n++] = ev->file; out[n++] = ev->func; break;
  case LS_K_DONE: out[n++] = ev->exc; break;
  case LS_K_BLOCK: out[n++] = ev->from_session; break;
  default: break;
  }
  return n;
}

static int block_frames(const ls_event *ev, int *skip) {
  int n = ev->nframes < 0 ? 0 : ev->nframes;
  *skip = n > LS_MAX_FRAMES ? n - LS_MAX_FRAMES : 0; /* keep the innermost: they name the culprit */
  return n - *skip;
}

size_t ls_record_size(const ls_event *ev) {
  size_t size = sizeof(rec_hdr);
  if (bare_kind(ev->kind)) return size; /* a step: the most frequent event, on every task step */
  ls_str strs[3];
  int n = event_strings(ev, strs);
  for (int i = 0; i < n; i++) size += 4 + str_len(strs[i]);
  if (ev->kind == LS_K_BLOCK) {
    int skip, nf = block_frames(ev, &skip);
    for (int i = 0; i < nf; i++) {
      const ls_frame *f = &ev->frames[skip + i];
      size += 4 + 12 + str_len(f->file) + str_len(f->func) + str_len(f->src);
    }
  }
  return size;
}

static unsigned char *put_str(unsigned char *dst, ls_str s) {
  uint32_t n = (uint32_t)str_len(s);
  memcpy(dst, &n, 4);
  if (n) memcpy(dst + 4, s.p, n);
  return dst + 4 + n;
}

void ls_record_write(unsigned char *dst, const ls_event *ev, size_t size) {
  if (bare_kind(ev->kind)) { /* header only: no zeroing, no string table */
    rec_hdr b = {.size = (uint32_t)size, .kind = (uint8_t)ev->kind, .state = (uint8_t)ev->state,
                 .line = ev->line, .id = ev->id, .parent = ev->parent, .t = ev->t, .d = ev->d};
    memcpy(dst, &b, sizeof b);
    return;
  }
  rec_hdr h;
  memset(&h, 0, sizeof h);
  h.size = (uint32_t)size;
  h.kind = (uint8_t)ev->kind;
  h.state = (uint8_t)ev->state;
  h.line = ev->line;
  h.id = ev->id; h.parent = ev->parent; h.t = ev->t; h.d = ev->d;
  ls_str strs[3];
  int n = event_strings(ev, strs);
  h.nstr = (uint16_t)n;
  int skip = 0, nf = 0;
  if (ev->kind == LS_K_BLOCK) {
    nf = block_frames(ev, &skip);
    h.line = nf;
    h.state = ev->elsewhere ? 1 : 0;
    h.parent = ev->elsewhere ? ev->from_task : 0;
  } else if (ev->kind == LS_K_DONE) {
    h.line = ev->status;
  }
  memcpy(dst, &h, sizeof h);
  unsigned char *p = dst + sizeof h;
  for (int i = 0; i < n; i++) p = put_str(p, strs[i]);
  for (int i = 0; i < nf; i++) {
    const ls_frame *f = &ev->frames[skip + i];
    memcpy(p, &f->line, 4);
    p += 4;
    p = put_str(p, f->file);
    p = put_str(p, f->func);
    p = put_str(p, f->src);
  }
}

/* Reads one string of a record, checking it stays inside [p, end). */
static const unsigned char *get_str(const unsigned char *p, const unsigned char *end, ls_str *s) {
  uint32_t n;
  if (end - p < 4) return NULL;
  memcpy(&n, p, 4);
  if ((size_t)(end - p - 4) < n) return NULL;
  s->p = (const char *)p + 4;
  s->n = n;
  return p + 4 + n;
}

static void key_u64(ls_buf *b, const char *key, uint64_t v) {
  ls_buf_puts(b, key);
  ls_buf_u64(b, v);
}

static void key_str(ls_buf *b, const char *key, ls_str s) {
  ls_buf_puts(b, key);
  ls_buf_jstr(b, s.p ? s.p : "", s.n);
}

static const char *kind_name(int kind) {
  switch (kind) {
  case LS_K_TASK: return "task";
  case LS_K_STEP: return "step";
  case LS_K_AWAIT: return "await";
  case LS_K_BLOCK: return "block";
  case LS_K_LAG: return "lag";
  case LS_K_DONE: return "done";
  case LS_K_END: return "end";
  default: return NULL;
  }
}

static const char *state_name(int state) {
  return state == LS_S_CANCELLED ? "cancelled" : state == LS_S_ERROR ? "error" : "ok";
}

/* Values must fit in [0, 2^53) for JSON readers that use doubles (contract v1). */
#define CLAMP53(v) ((v) >= (UINT64_C(1) << 53) ? (UINT64_C(1) << 53) - 1 : (v))

int ls_encode_records(ls_buf *out, const unsigned char *p, size_t n, int *first) {
  const unsigned char *end = p + n;
  while (p < end) {
    rec_hdr h;
    if ((size_t)(end - p) < sizeof h) return LSC_EINVAL;
    memcpy(&h, p, sizeof h);
    if (h.size < sizeof h || h.size > (size_t)(end - p)) return LSC_EINVAL;
    const unsigned char *q = p + sizeof h, *rend = p + h.size;
    const char *kname = kind_name(h.kind);
    if (!kname) return LSC_EINVAL;
    ls_str s[3] = {{0}};
    for (int i = 0; i < h.nstr && i < 3; i++) {
      q = get_str(q, rend, &s[i]);
      if (!q) return LSC_EINVAL;
    }
    if (!*first) ls_buf_append(out, ",", 1);
    *first = 0;
    ls_buf_puts(out, "{\"k\":\"");
    ls_buf_puts(out, kname);
    ls_buf_puts(out, "\"");
    uint64_t t = CLAMP53(h.t), d = CLAMP53(h.d);
    switch (h.kind) {
    case LS_K_TASK:
      key_u64(out, ",\"id\":", h.id);
      key_u64(out, ",\"parent\":", h.parent);
      key_str(out, ",\"name\":", s[0]);
      key_str(out, ",\"coro\":", s[1]);
      key_u64(out, ",\"t\":", t);
      break;
    case LS_K_STEP:
      key_u64(out, ",\"id\":", h.id);
      key_u64(out, ",\"t\":", t);
      key_u64(out, ",\"d\":", d);
      break;
    case LS_K_AWAIT:
      key_u64(out, ",\"id\":", h.id);
      key_u64(out, ",\"t\":", t);
      key_u64(out, ",\"d\":", d);
      key_str(out, ",\"what\":", s[0]);
      key_str(out, ",\"file\":", s[1]);
      key_u64(out, ",\"line\":", h.line < 0 ? 0 : (uint64_t)h.line);
      key_str(out, ",\"func\":", s[2]);
      break;
    case LS_K_BLOCK:
      if (h.id) key_u64(out, ",\"id\":", h.id);
      key_u64(out, ",\"t\":", t);
      key_u64(out, ",\"d\":", d);
      if (h.state) { /* from elsewhere: the causing session (null: none) and its task */
        if (s[0].n) key_str(out, ",\"from_session\":", s[0]);
        else ls_buf_puts(out, ",\"from_session\":null");
        if (h.parent) key_u64(out, ",\"from_task\":", h.parent);
      }
      ls_buf_puts(out, ",\"stack\":[");
      for (int i = 0; i < h.line; i++) {
        int32_t line;
        ls_str file, func, src;
        if (rend - q < 4) return LSC_EINVAL;
        memcpy(&line, q, 4);
        q += 4;
        if (!(q = get_str(q, rend, &file)) || !(q = get_str(q, rend, &func)) ||
            !(q = get_str(q, rend, &src)))
          return LSC_EINVAL;
        char srcbuf[512];
        if (!src.n && file.n) { /* the watchdog left the source line to us: read it here */
          src.n = ls_src_line(file.p, file.n, line, srcbuf, sizeof srcbuf);
          src.p = srcbuf;
        }
        ls_buf_puts(out, i ? ",{" : "{");
        key_str(out, "\"file\":", file);
        key_u64(out, ",\"line\":", line < 0 ? 0 : (uint64_t)line);
        key_str(out, ",\"func\":", func);
        key_str(out, ",\"src\":", src);
        ls_buf_puts(out, "}");
      }
      ls_buf_puts(out, "]");
      break;
    case LS_K_LAG:
      key_u64(out, ",\"t\":", t);
      key_u64(out, ",\"d\":", d);
      break;
    case LS_K_DONE:
      key_u64(out, ",\"id\":", h.id);
      key_u64(out, ",\"t\":", t);
      ls_buf_puts(out, ",\"state\":\"");
      ls_buf_puts(out, state_name(h.state));
      ls_buf_puts(out, "\"");
      if (h.state == LS_S_ERROR && s[0].n) key_str(out, ",\"exc\":", s[0]);
      if (h.line >= 100 && h.line <= 599) key_u64(out, ",\"status\":", (uint64_t)h.line);
      break;
    case LS_K_END:
      key_u64(out, ",\"t\":", t);
      break;
    }
    ls_buf_puts(out, "}");
    p = rend;
  }
  return out->failed ? LSC_ENOMEM : LSC_OK;
}
