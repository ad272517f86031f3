/* gz.c — one-shot gzip compression with zlib (gz.h). */
#include "gz.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

char *gz_compress(const char *in, size_t n, int level, size_t *outlen)
{
  if(n > 0xffffffffu)
    return NULL; /* zlib counts a single input in 32 bits */
  z_stream z;
  memset(&z, 0, sizeof(z));
  if(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  uLong bound = deflateBound(&z, (uLong)n);
  char *out = malloc(bound);
  if(!out) {
    deflateEnd(&z);
    return NULL;
  }
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)bound;
  int rc = deflate(&z, Z_FINISH);
  *outlen = z.total_out;
  deflateEnd(&z);
  if(rc != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  return out;
}
