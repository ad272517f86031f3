/* lshttp.c — the sender's HTTP client: libcurl easy handle reused for keep-alive, timeouts,
 * gzip bodies (zlib), Retry-After parsing. Never called with the GIL held. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <zlib.h>

#include "lscore.h"
#include "lshttp.h"

#define GZIP_ABOVE 32768 /* smaller bodies go plain: compressing them saves little */

struct ls_http {
  CURL *curl;
  ls_http_result *res;  /* where the answer being read goes (during ls_http_post) */
  size_t answer_len;
  char *url;
  struct curl_slist *headers[2][2]; /* [records][gzip]: the Content-Type and Content-Encoding */
  int retry_after_s;
  int takes_strings;    /* the answer being read says X-Loopscope-Ingest: strings */
  int takes_records;    /* ... and records */
  int gzip;             /* compress large bodies: not towards a loopback address (see below) */
};

/* 1 when url's host is a loopback name or address. There the body costs no network, and gzip
 * costs CPU twice on the same machine (deflate here, inflate in the server, which also competes
 * with the program for its cores): measured with 60 batches of ~6,500 events replayed to a local
 * server, 113-140k events/s plain against 84-88k gzipped (level 1). */
static int loopback_url(const char *url) {
  const char *h = strstr(url, "://");
  h = h ? h + 3 : url;
  const char *at = strpbrk(h, "@/"); /* skip user:password@ if any */
  if (at && *at == '@') h = at + 1;
  size_t n = strcspn(h, ":/");
  if (*h == '[') return strncmp(h, "[::1]", 5) == 0;
  if (n == 9 && strncasecmp(h, "localhost", 9) == 0) return 1;
  return n > 4 && strncmp(h, "127.", 4) == 0;
}

/* Keeps the start of the answer (the sender reads a 400's detail), drops the rest. */
static size_t read_body(char *p, size_t size, size_t n, void *ud) {
  ls_http *h = ud;
  size_t len = size * n, room = sizeof h->res->answer - 1 - h->answer_len;
  size_t k = len < room ? len : room;
  memcpy(h->res->answer + h->answer_len, p, k);
  h->answer_len += k;
  h->res->answer[h->answer_len] = '\0';
  return len;
}

/* The length of header line p (len bytes) past its name when it is `name` (lower case, with the
 * colon), 0 otherwise: names are case-insensitive. */
static size_t header_is(const char *p, size_t len, const char *name, size_t nlen) {
  if (len <= nlen) return 0;
  for (size_t i = 0; i < nlen; i++)
    if (tolower((unsigned char)p[i]) != name[i]) return 0;
  return nlen;
}

/* 1 when the comma-separated list in [p, end) holds token (ASCII case-insensitive, spaces and
 * tabs around an item ignored). */
static int list_has(const char *p, const char *end, const char *token) {
  size_t tn = strlen(token);
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    const char *s = p;
    while (p < end && *p != ',' && *p != '\r' && *p != '\n') p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if ((size_t)(e - s) == tn && strncasecmp(s, token, tn) == 0) return 1;
    if (p < end && (*p == '\r' || *p == '\n')) break;
  }
  return 0;
}

static size_t read_header(char *p, size_t size, size_t n, void *ud) {
  ls_http *h = ud;
  size_t len = size * n, at;
  static const char retry[] = "retry-after:", takes[] = "x-loopscope-ingest:";
  if ((at = header_is(p, len, retry, sizeof retry - 1))) {
    int v = 0, digits = 0;
    size_t i;
    for (i = at; i < len && p[i] == ' '; i++) {}
    for (; i < len && isdigit((unsigned char)p[i]) && digits < 6; i++, digits++) v = v * 10 + (p[i] - '0');
    if (digits) h->retry_after_s = v;
  } else if ((at = header_is(p, len, takes, sizeof takes - 1))) {
    if (list_has(p + at, p + len, "strings")) h->takes_strings = 1;
    if (list_has(p + at, p + len, "records")) h->takes_records = 1;
  }
  return len;
}

static struct curl_slist *make_headers(const char *token, int records, int gz) {
  struct curl_slist *l = NULL, *t;
  const char *fixed[] = {records ? "Content-Type: " LS_WIRE_MEDIA : "Content-Type: application/json", "Expect:",
                         gz ? "Content-Encoding: gzip" : NULL};
  for (int i = 0; i < 3 && fixed[i]; i++) {
    if (!(t = curl_slist_append(l, fixed[i]))) goto fail;
    l = t;
  }
  if (token && *token) {
    static const char prefix[] = "Authorization: Bearer ";
    size_t n = strlen(token); /* at most LS_TOKEN_MAX: checked by ls_http_new */
    char *line = malloc(sizeof prefix + n);
    if (!line) goto fail;
    memcpy(line, prefix, sizeof prefix - 1);
    memcpy(line + sizeof prefix - 1, token, n + 1);
    t = curl_slist_append(l, line);
    free(line);
    if (!t) goto fail;
    l = t;
  }
  return l;
fail:
  curl_slist_free_all(l);
  return NULL;
}

int ls_token_valid(const char *token) {
  if (!token) return 1;
  size_t n = 0;
  /* visible ASCII only: anything else (CR, LF, space) would end or split the header */
  for (; token[n]; n++)
    if (n >= LS_TOKEN_MAX || (unsigned char)token[n] < 0x21 || (unsigned char)token[n] > 0x7e) return 0;
  return 1;
}

int ls_http_new(const char *base_url, const char *token, int timeout_ms, int gzip, ls_http **out) {
  static const char path[] = "/api/v1/ingest";
  if (!ls_token_valid(token)) return LSC_EINVAL;
  ls_http *h = calloc(1, sizeof *h);
  if (!h) return LSC_ENOMEM;
  size_t n = strlen(base_url);
  while (n > 0 && base_url[n - 1] == '/') n--;
  h->url = malloc(n + sizeof path);
  int made = 1;
  for (int r = 0; r < 2; r++)
    for (int g = 0; g < 2; g++) made &= (h->headers[r][g] = make_headers(token, r, g)) != NULL;
  h->curl = curl_easy_init();
  if (!h->url || !made || !h->curl) {
    ls_http_free(h);
    return LSC_ENOMEM;
  }
  memcpy(h->url, base_url, n);
  memcpy(h->url + n, path, sizeof path);
  h->gzip = gzip > 0 ? 1 : gzip < 0 ? 0 : !loopback_url(h->url);
  CURL *c = h->curl;
  curl_easy_setopt(c, CURLOPT_URL, h->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 1000 ? timeout_ms : 1000));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, read_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  /* loopback traffic never goes through a proxy */
  *out = h;
  return LSC_OK;
}

void ls_http_free(ls_http *h) {
  if (!h) return;
  if (h->curl) curl_easy_cleanup(h->curl);
  for (int r = 0; r < 2; r++)
    for (int g = 0; g < 2; g++) curl_slist_free_all(h->headers[r][g]);
  free(h->url);
  free(h);
}

int ls_gzip(const char *src, size_t n, char **out, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) return LSC_ENOMEM;
  uLong bound = deflateBound(&z, (uLong)n) + 32;
  char *buf = malloc(bound);
  if (!buf) { deflateEnd(&z); return LSC_ENOMEM; }
  z.next_in = (Bytef *)src;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)buf;
  z.avail_out = (uInt)bound;
  int rc = deflate(&z, Z_FINISH);
  *out_len = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) { free(buf); return LSC_ENOMEM; }
  *out = buf;
  return LSC_OK;
}

int ls_http_post(ls_http *h, const char *body, size_t len, int records, ls_http_result *res) {
  char *gz = NULL;
  size_t gz_len = 0;
  if (h->gzip && len > GZIP_ABOVE && ls_gzip(body, len, &gz, &gz_len) == LSC_OK) {
    body = gz;
    len = gz_len;
  }
  h->retry_after_s = -1;
  h->takes_strings = 0;
  h->takes_records = 0;
  h->res = res;
  h->answer_len = 0;
  res->answer[0] = '\0';
  curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers[records != 0][gz != NULL]);
  curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  CURLcode rc = curl_easy_perform(h->curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
  free(gz);
  res->status = (int)status;
  res->retry_after_s = h->retry_after_s;
  res->takes_strings = rc == CURLE_OK && h->takes_strings;
  res->takes_records = rc == CURLE_OK && h->takes_records;
  return rc == CURLE_OK ? LSC_OK : LSC_ESYS;
}
