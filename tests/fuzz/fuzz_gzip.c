/* fuzz_gzip.c — libFuzzer-style target for the gzip decoding of ingest bodies (gzip_body.c, the
 * path of POST /api/v1/ingest with Content-Encoding: gzip), under several body limits and memory
 * budgets, checked against zlib's own decode (without gzip_body.c's buffer, steps or budget)
 * and, for streams built here, against the plaintext.
 *
 * Input: byte 0 picks the limit (bits 0-2), the budget (bits 3-4) and the mode (bit 7).
 *   raw mode (bit 7 clear): bytes 1.. are the body as sent.
 *   built mode (bit 7 set): bytes 4.. are a plaintext that this file compresses into a gzip member
 *   (byte 1: level 0-9 in bits 0-3, a second member in bit 4 (decoded too: RFC 1952 members),
 *   cut short in bit 5, one byte flipped in bit 6, junk after the last trailer in bit 7; byte 2: the plaintext repeated 2^(bits 0-3) times,
 *   the deflate strategy in bits 4-5; byte 3: where to cut or flip, in 256ths of the stream), so
 *   valid members, bombs, concatenations and damaged streams are all a mutation away.
 * Every input runs twice: with the limit and budget it picked, and as a server with a two-step
 * (128 KiB) --max-body and an ample budget would run it (small, so bombs stay cheap to fuzz). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "gzip_body.h"

/* gzip_body.c's inflate step (64 KiB, or what the fuzz build set): it may see an error this late.
 * Every size below is in steps, so a build with a smaller step keeps the same edges. */
#define CHUNK ((size_t)GZIP_BODY_STEP)
#define SERVER_MAX (2 * CHUNK) /* the second run's --max-body: 128 KiB in production */
#define MAX_PLAIN (SERVER_MAX + CHUNK / 16) /* a built plaintext (repeats included), just past it */

/* around the inflate step, and past two of them (at 64 KiB: 4096, 65535..65537, 200000) */
static const size_t limits[] = {0, 1, 100, CHUNK / 16, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + CHUNK * 53 / 1024};

/* ---------------------------------------------------------------- the reference decode */

enum { REF_OK, REF_BIG, REF_BAD };

typedef struct ref {
  int status;     /* REF_OK: whole members only, of at most max bytes together; REF_BIG: more than max
                   * bytes decode cleanly; REF_BAD: corrupt or cut short before that */
  int bad_near;   /* the stream is corrupt or cut short within max + CHUNK decoded bytes */
  uint8_t *p;     /* the first min(decoded, max + CHUNK + 1) bytes */
  size_t len;
} ref;

/* Buffers the harness reuses from one input to the next. The reference decode and the built
 * plaintext reach 128-265 KiB, past ASan's size classes: a fresh malloc of each for every input
 * was an mmap, page faults and a munmap (a fifth of this target's time). They only grow; what the
 * server reads (the body) and writes (its own buffer) is still allocated to its exact size, so
 * ASan still sees any access past their ends. */
typedef struct scratch {
  uint8_t *p;
  size_t cap;
} scratch;

static scratch ref_buf, plain_buf, member_buf[2];

static uint8_t *scratch_get(scratch *s, size_t n)
{
  if(n > s->cap) {
    uint8_t *p = realloc(s->p, n);
    if(!p)
      return NULL;
    s->p = p;
    s->cap = n;
  }
  return s->p;
}

static void scratch_free_all(void)
{
  scratch *all[] = {&ref_buf, &plain_buf, &member_buf[0], &member_buf[1]};
  for(size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    free(all[i]->p);
    all[i]->p = NULL;
    all[i]->cap = 0;
  }
}

/* zlib's inflate with none of gzip_body.c's choices (one output buffer of max + CHUNK + 1 bytes
 * from the start, no budget, no steps): what a body of in[0..n) decodes to, as far as
 * max + CHUNK + 1 bytes. 0, or -1 when the reference itself ran out of memory. r->p points into
 * ref_buf, valid until the next call. */
static int ref_decode(const uint8_t *in, size_t n, size_t max, ref *r)
{
  memset(r, 0, sizeof(*r));
  size_t room = max + CHUNK + 1;
  r->p = scratch_get(&ref_buf, room);
  if(!r->p)
    return -1;
  z_stream z;
  memset(&z, 0, sizeof(z));
  if(inflateInit2(&z, 15 + 16) != Z_OK)
    return -1;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = r->p;
  z.avail_out = (uInt)room;
  int rc = Z_OK;
  for(;;) {
    if(z.avail_out == 0)
      break; /* max + CHUNK + 1 bytes decoded without a fault */
    rc = inflate(&z, Z_NO_FLUSH);
    if(rc == Z_STREAM_END && z.avail_in > 0) { /* another member follows (RFC 1952 2.2) */
      if(inflateReset(&z) != Z_OK)
        break;
      continue;
    }
    if(rc != Z_OK)
      break; /* the end, a fault, or no progress possible (the input ran out: Z_BUF_ERROR) */
  }
  r->len = room - z.avail_out;
  inflateEnd(&z);
  if(rc == Z_MEM_ERROR)
    return -1;
  int complete = rc == Z_STREAM_END;
  int full = rc == Z_OK && z.avail_out == 0;
  r->bad_near = !complete && !full;
  if(r->len > max) /* more than max bytes came out before any fault: the first max + 1 are clean */
    r->status = REF_BIG;
  else
    r->status = complete ? REF_OK : REF_BAD;
  return 0;
}

/* ---------------------------------------------------------------- building streams */

typedef struct built {
  uint8_t *p;
  size_t len;
  uint8_t *plain;    /* what the members hold, together (plain_buf's) */
  size_t plain_len;
  int intact;        /* neither cut short, damaged nor followed by junk: the body decodes to plain */
} built;

/* One deflate stream for the whole run, reset for each member: deflateInit2 allocates ~270 KB
 * of state, and doing that for every input was a large share of this target's time. */
static struct {
  z_stream z;
  int ready;
} dz;

static void deflater_end(void)
{
  if(dz.ready)
    deflateEnd(&dz.z);
  dz.ready = 0;
}

/* Compresses in[0..n) into one gzip member in *into (reused): 0, or -1. */
static int deflate_member(const uint8_t *in, size_t n, int level, int strategy, scratch *into, size_t *outlen)
{
  if(!dz.ready) {
    memset(&dz.z, 0, sizeof(dz.z));
    if(deflateInit2(&dz.z, level, Z_DEFLATED, 15 + 16, 8, strategy) != Z_OK)
      return -1;
    dz.ready = 1;
    atexit(deflater_end);
  }
  if(deflateReset(&dz.z) != Z_OK || deflateParams(&dz.z, level, strategy) != Z_OK)
    return -1;
  z_stream *z = &dz.z;
  uLong bound = deflateBound(z, (uLong)n) + 64;
  uint8_t *p = scratch_get(into, bound);
  if(!p)
    return -1;
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  z->next_out = p;
  z->avail_out = (uInt)bound;
  int rc = deflate(z, Z_FINISH);
  *outlen = z->total_out;
  return rc == Z_STREAM_END ? 0 : -1;
}

/* Builds a body from a built-mode input (see the top of the file): 0, or -1 (out of memory). */
static int build(const uint8_t *data, size_t size, built *b)
{
  memset(b, 0, sizeof(*b));
  uint8_t ctl = data[1], rep = data[2], pos = data[3];
  const uint8_t *seed = data + 4;
  size_t seed_len = size - 4;
  size_t times = (size_t)1 << (rep & 15);
  if(seed_len && times > MAX_PLAIN / seed_len)
    times = MAX_PLAIN / seed_len;
  b->plain_len = seed_len * times;
  /* room for the second member's plaintext (the seed once) after the first's */
  b->plain = scratch_get(&plain_buf, b->plain_len + seed_len + 1);
  if(!b->plain)
    return -1;
  for(size_t i = 0; i < times; i++)
    memcpy(b->plain + i * seed_len, seed, seed_len);
  size_t first_len = b->plain_len;
  static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE};
  size_t l1 = 0, l2 = 0;
  if(deflate_member(b->plain, first_len, (ctl & 15) % 10, strategies[(rep >> 4) & 3], &member_buf[0], &l1))
    return -1;
  if(ctl & 16) { /* a second member: the seed once, compressed at another level */
    if(deflate_member(seed, seed_len, 9 - (ctl & 15) % 10, Z_DEFAULT_STRATEGY, &member_buf[1], &l2))
      return -1;
    memcpy(b->plain + first_len, seed, seed_len); /* every member is read: its text follows */
    b->plain_len += seed_len;
  }
  static const uint8_t junk[] = {0x1f, 0x8b, 0x08, 0x00, 'j', 'u', 'n', 'k'};
  size_t junk_len = ctl & 128 ? sizeof(junk) : 0;
  b->p = malloc(l1 + l2 + junk_len + 1); /* the body the server reads: its own allocation */
  if(!b->p)
    return -1;
  memcpy(b->p, member_buf[0].p, l1);
  if(l2)
    memcpy(b->p + l1, member_buf[1].p, l2);
  memcpy(b->p + l1 + l2, junk, junk_len);
  b->len = l1 + l2 + junk_len;
  b->intact = junk_len == 0; /* junk after the last member fails the body */
  size_t at = b->len * pos / 256;
  if((ctl & 64) && at < b->len) {
    b->p[at] ^= (uint8_t)(1u << (pos & 7));
    b->intact = 0; /* every member is read: damage anywhere may count */
  }
  if((ctl & 32) && at < l1) {
    b->len = at; /* cut inside the first member */
    b->intact = 0;
  }
  return 0;
}

/* ---------------------------------------------------------------- one decode, checked */

static int log2_bucket(size_t v)
{
  int k = 0;
  while(v) {
    k++;
    v >>= 1;
  }
  return k;
}

/* budget_kind: 0 none, 1 a quarter of max (+256), 2 exactly max + 1 (what out can hold at most),
 * 3 plenty. */
static void run(const uint8_t *in, size_t n, size_t max, int budget_kind, const built *b, const char *mode)
{
  membudget budget;
  long long budget_limit = budget_kind == 1 ? (long long)(max / 4 + 256)
                           : budget_kind == 2 ? (long long)max + 1 : (long long)max * 4 + 4096;
  membudget_init(&budget, budget_limit);
  membudget *bp = budget_kind ? &budget : NULL;

  ref r;
  if(ref_decode(in, n, max, &r))
    return; /* the reference could not get memory: nothing to compare with */

  jbuf out;
  jbuf_init(&out, max); /* as http.c: the decoded body's buffer is capped at --max-body */
  size_t held = 0;
  int rc = gzip_body_inflate((const char *)in, n, max, bp, &out, &held);

  FUZZ_CHECK(rc == 0 || rc == LS_ETOOBIG || rc == LS_EINVAL || rc == LS_ENOMEM || rc == LS_EBUSY,
             "gzip_body_inflate returned %d", rc);
  FUZZ_CHECK(out.len <= max, "decoded %zu bytes past the limit %zu", out.len, max);
  /* whatever was decoded, also on failure, is what zlib decodes */
  FUZZ_CHECK(out.len <= r.len && (out.len == 0 || !memcmp(out.data, r.p, out.len)),
             "the decoded bytes differ from zlib's (%zu bytes, zlib %zu)", out.len, r.len);
  if(bp) {
    FUZZ_CHECK(membudget_used(bp) == (long long)held, "budget holds %lld, the caller was told %zu",
               membudget_used(bp), held);
    FUZZ_CHECK(membudget_used(bp) <= budget_limit, "budget %lld over its limit %lld", membudget_used(bp),
               budget_limit);
    FUZZ_CHECK(held <= out.cap, "%zu bytes held for a buffer of %zu", held, out.cap);
    FUZZ_CHECK(rc == LS_EBUSY || held == out.cap, "buffer of %zu bytes, %zu held", out.cap, held);
    /* out never grows past max + 1 bytes (jbuf's cap): a budget that size always suffices */
    FUZZ_CHECK(rc != LS_EBUSY || budget_limit < (long long)max + 1, "503 with a budget of %lld for max %zu",
               budget_limit, max);
  }
  else
    FUZZ_CHECK(held == 0 && rc != LS_EBUSY, "no budget, yet held %zu / rc %d", held, rc);

  if(rc == 0) {
    FUZZ_CHECK(r.status == REF_OK, "accepted a body zlib refuses or finds over %zu bytes", max);
    FUZZ_CHECK(out.len == r.len, "decoded %zu bytes, zlib %zu", out.len, r.len);
  }
  if(rc == LS_ETOOBIG)
    FUZZ_CHECK(r.status == REF_BIG, "413 for a body zlib decodes to %zu bytes (status %d), limit %zu", r.len,
               r.status, max);
  if(rc == LS_EINVAL)
    FUZZ_CHECK(r.status == REF_BAD || (r.status == REF_BIG && r.bad_near),
               "400 for a body zlib decodes cleanly (%zu bytes)", r.len);
  if(rc != LS_EBUSY && rc != LS_ENOMEM) {
    if(r.status == REF_OK)
      FUZZ_CHECK(rc == 0, "refused (%d) a body zlib decodes to %zu bytes, limit %zu", rc, r.len, max);
    if(r.status == REF_BIG && !r.bad_near)
      FUZZ_CHECK(rc == LS_ETOOBIG, "rc %d for a body decoding past the limit %zu", rc, max);
  }
  /* a member built here and left whole decodes to its plaintext */
  if(b && b->intact && rc == 0)
    FUZZ_CHECK(out.len == b->plain_len && (!out.len || !memcmp(out.data, b->plain, out.len)),
               "decoded %zu bytes, the plaintext has %zu", out.len, b->plain_len);
  if(b && b->intact && b->plain_len <= max && rc != LS_EBUSY && rc != LS_ENOMEM)
    FUZZ_CHECK(rc == 0, "a whole member of %zu bytes refused (%d), limit %zu", b->plain_len, rc, max);
  if(b && b->intact && b->plain_len > max && rc != LS_EBUSY && rc != LS_ENOMEM)
    FUZZ_CHECK(rc == LS_ETOOBIG, "a whole member of %zu bytes over the limit %zu: rc %d", b->plain_len, max, rc);

  /* the caller's part (http.c's unhold): free the buffer, give back what it held */
  jbuf_free(&out);
  if(bp)
    membudget_give(bp, held);
  FUZZ_CHECK(!bp || membudget_used(bp) == 0, "budget holds %lld after everything was given back",
             membudget_used(bp));

  if(fuzz_feedback) {
    char sig[96];
    snprintf(sig, sizeof(sig), "gzip:%s:%d:%d:%d:%d", mode, rc, r.status, budget_kind, log2_bucket(out.len));
    fuzz_feedback(sig);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if(size < 1 || size > (1u << 20))
    return 0;
  static int once;
  if(!once++)
    atexit(scratch_free_all);
  size_t max = limits[data[0] & 7];
  int budget_kind = (data[0] >> 3) & 3;
  if(!(data[0] & 128)) {
    run(data + 1, size - 1, max, budget_kind, NULL, "raw");
    run(data + 1, size - 1, SERVER_MAX, 3, NULL, "raw-server");
    return 0;
  }
  if(size < 4)
    return 0;
  built b;
  if(build(data, size, &b) == 0) {
    run(b.p, b.len, max, budget_kind, &b, "built");
    run(b.p, b.len, SERVER_MAX, 3, &b, "built-server");
  }
  free(b.p);
  return 0;
}
