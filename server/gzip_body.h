/* gzip_body.h — decoding a gzip request body (Content-Encoding: gzip) into a bounded buffer,
 * with what that buffer holds reserved in the shared memory budget. Which HTTP status each
 * result becomes is http.c's; parsing the decoded bytes is ingest.c's. */
#ifndef LS_GZIP_BODY_H
#define LS_GZIP_BODY_H

#include <stddef.h>

#include "arena.h"
#include "jbuf.h"

/* Bytes decoded between two checks of the limit and the budget (and the size of the stack buffer
 * that holds them). Production builds keep 64 KiB; bench/reliability/libfuzzer.sh can build the
 * fuzz targets with a smaller step (FUZZ_GZIP_STEP), so that a body crossing several steps, the
 * edges the checks are about, costs the fuzzer 16x fewer bytes to deflate and inflate. */
#ifndef GZIP_BODY_STEP
#define GZIP_BODY_STEP (64 * 1024)
#endif

/* Inflates every gzip member of in[0..n) (RFC 1952: a body may be several members back to back)
 * and appends them to out, never letting out->len pass max, all members together. What out holds
 * (its capacity) is reserved in budget (NULL: none) beyond *held, and *held says how much is
 * reserved when it returns, also on failure: the caller frees out and gives *held back.
 * 0; LS_ETOOBIG: the decoded body passes max; LS_EINVAL: not gzip, a member corrupt or cut
 * short, or bytes after the last member that are not a whole member;
 * LS_ENOMEM: zlib or the buffer could not get memory; LS_EBUSY: the budget is spent. */
int gzip_body_inflate(const char *in, size_t n, size_t max, membudget *budget, jbuf *out, size_t *held);

#endif
