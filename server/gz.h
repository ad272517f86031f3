/* gz.h — gzip (RFC 1952) of a byte range in one call, for answers (http.c) and OTLP request
 * bodies (otlp_push.c). Decoding request bodies stays with http.c, which bounds it. */
#ifndef LS_GZ_H
#define LS_GZ_H

#include <stddef.h>

/* gzip of in[0..n) (n < 4 GiB) at zlib level `level` into a malloc'd buffer (*outlen bytes), or
 * NULL when memory ran out. */
char *gz_compress(const char *in, size_t n, int level, size_t *outlen);

#endif
