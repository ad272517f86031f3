/* lshttp.h — one HTTP client for the sender thread: POST a body, JSON or in the binary record form
 * (gzip above a size, except to a loopback address), with libcurl over a kept-alive connection. Retrying and batching are lssender.c's business. */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stddef.h>

typedef struct ls_http ls_http;

typedef struct ls_http_result {
  int status;            /* HTTP status, 0 when no answer (connection failed, timed out) */
  int retry_after_s;     /* a Retry-After header's seconds, -1 when absent */
  char answer[256];      /* the start of the answer's body, NUL-terminated (a 400's detail) */
  int takes_strings;     /* the answer's X-Loopscope-Ingest header names "strings": the server
                          * takes a batch's strings table (docs/api.md) */
  int takes_records;     /* ... names "records": it takes bodies in the binary record form */
} ls_http_result;

/* gzip: as ls_config's (0: large bodies gzipped unless base_url is a loopback address). */
int ls_http_new(const char *base_url, const char *token, int timeout_ms, int gzip, ls_http **out);
void ls_http_free(ls_http *h);
/* POSTs body to <base>/api/v1/ingest, as JSON, or with records set as the binary record form
 * (LS_WIRE_MEDIA). Returns 0 when an answer came (see res->status). */
int ls_http_post(ls_http *h, const char *body, size_t len, int records, ls_http_result *res);
/* gzip-compresses src into a malloc'd buffer; 0 on success. */
int ls_gzip(const char *src, size_t n, char **out, size_t *out_len);

#endif
