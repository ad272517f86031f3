/* gzip_body.c — the gzip decoding of ingest request bodies (gzip_body.h): zlib's inflate in
 * GZIP_BODY_STEP (64 KiB) steps over every member, bounded by the body limit and the memory budget at every step,
 * so a small compressed body cannot grow into more memory than it may hold. Statuses are
 * http.c's. */
#include "gzip_body.h"

#include <string.h>
#include <zlib.h>

/* Reserves in budget what out holds (its capacity) beyond *held: 0, or -1 when the budget is
 * spent (nothing more reserved then). */
static int reserve(membudget *budget, const jbuf *out, size_t *held)
{
  if(!budget || out->cap <= *held)
    return 0;
  if(membudget_take(budget, out->cap - *held))
    return -1;
  *held = out->cap;
  return 0;
}

int gzip_body_inflate(const char *in, size_t n, size_t max, membudget *budget, jbuf *out, size_t *held)
{
  z_stream z;
  memset(&z, 0, sizeof(z));
  if(inflateInit2(&z, 15 + 16) != Z_OK) /* 15: the largest window; +16: gzip framing only */
    return LS_ENOMEM;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n; /* bodies are bounded by --max-body, far below 4 GiB */
  char chunk[GZIP_BODY_STEP];
  _Static_assert(GZIP_BODY_STEP >= 256 && GZIP_BODY_STEP <= (1 << 20), "a sane inflate step");
  int rc;
  for(;;) {
    z.next_out = (Bytef *)chunk;
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    if(rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return rc == Z_MEM_ERROR ? LS_ENOMEM : LS_EINVAL;
    }
    size_t got = sizeof(chunk) - z.avail_out;
    if(out->len + got > max) { /* checked before appending: out never holds more than max */
      inflateEnd(&z);
      return LS_ETOOBIG;
    }
    jbuf_append(out, chunk, got);
    if(jbuf_status(out)) {
      inflateEnd(&z);
      return jbuf_status(out);
    }
    if(reserve(budget, out, held)) {
      inflateEnd(&z);
      return LS_EBUSY;
    }
    if(rc == Z_STREAM_END) {
      if(z.avail_in == 0)
        break;
      /* RFC 1952 2.2: a gzip file is a series of members, and gunzip decodes them all (pigz and
       * streaming compressors write several). The next must be a whole member too: anything
       * else after the last one (padding, junk) fails the body instead of being dropped. The
       * same out, max and budget go on bounding what all members decode to together. */
      if(inflateReset(&z) != Z_OK) {
        inflateEnd(&z);
        return LS_EINVAL;
      }
      continue;
    }
    if(z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return LS_EINVAL; /* the stream stops before its end */
    }
  }
  inflateEnd(&z);
  return 0;
}
