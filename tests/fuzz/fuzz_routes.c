/* fuzz_routes.c — libFuzzer-style target for the HTTP front (http.c): routing, the Host guard,
 * auth, method and media-type checks, ingest and the JSON errors, through the real libmicrohttpd
 * server on 127.0.0.1 with a seeded store. Each input becomes one request sent over a socket;
 * the answer is checked against schema/openapi.yaml and the guards of docs/api.md.
 *
 * Input: byte 0 picks the server (bit 0: the one with --token) and byte 1.. are fields split at
 * '\n': method, request target (path and query), Host, Authorization, Content-Type,
 * Content-Encoding, Cookie, then the body (the rest, newlines included). CR, LF and NUL are
 * dropped from the first seven (they would only make libmicrohttpd refuse the request); an empty
 * or missing header field sends no such header, and no Host makes it an HTTP/1.0 request (HTTP/1.1
 * requires one). In header fields "@T" becomes the server's token and "@C" the login cookie's
 * value, so authorised requests are a mutation away. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "writer.h"

#define TOKEN "fuzz-token-0123456789"
#define ALLOWED_HOST "loopscope.test"
#define MAX_BODY ((size_t)1 << 20)
#define ANSWER_MAX ((size_t)8 << 20)  /* a whole answer; the seeded sessions' are far smaller */
#define ANSWER_WAIT_MS 30000          /* no answer in this long is a hang */
#define NFIELDS 7

/* ---------------------------------------------------------------- the servers */

/* Started once for the whole run, as libFuzzer targets keep expensive setup: one store and
 * writer, two HTTP servers on it (without and with --token). Removed at exit. */
static struct {
  char dir[256], db[300];
  store *s;
  writer *w;
  metrics m;
  membudget budget;
  http_server *h[2];
  unsigned port[2];
  char cookie[80]; /* the token server's login cookie value */
  int ready;
} fx;

static const char design_batch[] = FUZZ_DESIGN_BATCH;

static void seed(const char *body)
{
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  FUZZ_CHECK(ingest_parse(body, strlen(body), &lim, &b, detail, sizeof(detail)) == 0, "seed: %s", detail);
  int dup = 0;
  FUZZ_CHECK(writer_put(fx.w, b, &dup) == 0, "seed batch not stored");
}

static void teardown(void)
{
  if(!fx.ready)
    return;
  for(int i = 0; i < 2; i++)
    http_stop(fx.h[i], 5000);
  writer_stop(fx.w);
  store_close(fx.s);
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[320];
  for(size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
    snprintf(p, sizeof(p), "%s%s", fx.db, suffix[i]);
    unlink(p);
  }
  rmdir(fx.dir);
  fx.ready = 0;
}

typedef struct answer {
  char *p;      /* the whole answer, NUL-terminated; malloc'd */
  size_t len;
  int status;
  const char *body;
  size_t body_len;
} answer;

static int exchange(unsigned port, const char *req, size_t req_len, answer *a);

static void setup(void)
{
  log_set_level(LOG_ERROR);
  signal(SIGPIPE, SIG_IGN); /* a server that closes early must not kill the fuzzer */
  const char *tmp = getenv("TMPDIR");
  snprintf(fx.dir, sizeof(fx.dir), "%s/loopscope-fuzz-routes-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  FUZZ_CHECK(mkdtemp(fx.dir), "mkdtemp %s failed", fx.dir);
  snprintf(fx.db, sizeof(fx.db), "%s/fuzz.db", fx.dir);
  store_options o;
  store_default_options(&o, fx.db);
  o.readers = 4;
  char err[256];
  FUZZ_CHECK(store_open(&o, &fx.s, err, sizeof(err)) == 0, "store_open: %s", err);
  metrics_init(&fx.m);
  membudget_init(&fx.budget, 64 << 20);
  FUZZ_CHECK(writer_start(fx.s, &fx.m, 64, 8, &fx.w) == 0, "writer_start failed");
  /* ingests the fuzzer gets right keep adding sessions: keep the newest few, as a user would */
  store_limits keep = {.max_sessions = 32};
  writer_set_limits(fx.w, &keep);
  fx.ready = 1;
  atexit(teardown);
  seed(design_batch);
  seed("{\"v\":1,\"batch\":\"b-bare\",\"session\":\"s-bare\",\"meta\":{\"name\":\"bare\"},\"events\":[]}");

  static const char *const allowed[] = {ALLOWED_HOST};
  for(int i = 0; i < 2; i++) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    http_config c;
    memset(&c, 0, sizeof(c));
    c.addr = (const struct sockaddr *)&sa;
    c.addrlen = sizeof(sa);
    c.token = i ? TOKEN : NULL;
    c.max_body = MAX_BODY;
    c.threads = 2;
    c.frame_ancestors = "'self'";
    ingest_default_limits(&c.limits);
    c.budget = &fx.budget;
    c.listen = "127.0.0.1:0";
    c.allowed_hosts = allowed;
    c.nallowed_hosts = 1;
    c.max_connections = 64;
    c.request_timeout_s = 60;
    c.idle_timeout_s = 60;
    FUZZ_CHECK(http_start(&c, fx.s, fx.w, &fx.m, &fx.h[i]) == 0, "http_start failed");
    fx.port[i] = http_port(fx.h[i]);
    FUZZ_CHECK(fx.port[i] > 0, "no port");
  }
  /* the login cookie, as the login page gets it */
  static const char login[] = "POST /login HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " TOKEN
                              "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  answer a;
  FUZZ_CHECK(exchange(fx.port[1], login, sizeof(login) - 1, &a) == 0, "login: no answer");
  FUZZ_CHECK(!strncmp(a.p, "HTTP/1.1 204 ", 13), "login failed: %.200s", a.p);
  const char *c = strstr(a.p, "loopscope_auth=");
  FUZZ_CHECK(c, "login set no cookie");
  c += 15;
  size_t n = strcspn(c, ";\r");
  FUZZ_CHECK(n > 0 && n < sizeof(fx.cookie), "login cookie of %zu bytes", n);
  memcpy(fx.cookie, c, n);
  fx.cookie[n] = '\0';
  free(a.p);
}

/* ---------------------------------------------------------------- one exchange */

static int64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sends req on a new connection and reads the answer until the server closes it (every request
 * says Connection: close). 0 and *a (a->p to free), or -1 when the connection failed. A server
 * that never answers fails the run. */
static int exchange(unsigned port, const char *req, size_t req_len, answer *a)
{
  memset(a, 0, sizeof(*a));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if(fd < 0)
    return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if(connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
    close(fd);
    return -1;
  }
  size_t off = 0;
  int64_t deadline = now_ms() + ANSWER_WAIT_MS;
  while(off < req_len) {
    ssize_t w = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
    if(w < 0 && errno == EINTR)
      continue;
    if(w <= 0)
      break; /* the server may answer and close before reading everything (413 at once) */
    off += (size_t)w;
  }
  size_t cap = 16384;
  char *p = malloc(cap);
  if(!p) {
    close(fd);
    return -1;
  }
  size_t len = 0;
  for(;;) {
    int64_t left = deadline - now_ms();
    FUZZ_CHECK(left > 0, "no complete answer in %d ms (%zu bytes so far)", ANSWER_WAIT_MS, len);
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)left);
    if(pr < 0 && errno == EINTR)
      continue;
    if(pr <= 0)
      continue; /* the deadline check above reports it */
    if(len + 1 >= cap) {
      FUZZ_CHECK(cap < ANSWER_MAX, "an answer over %zu bytes", ANSWER_MAX);
      char *q = realloc(p, cap * 2);
      if(!q) {
        free(p);
        close(fd);
        return -1;
      }
      p = q;
      cap *= 2;
    }
    ssize_t r = recv(fd, p + len, cap - len - 1, 0);
    if(r < 0 && errno == EINTR)
      continue;
    if(r <= 0)
      break; /* closed (a reset after a complete answer is fine: the server dropped the body) */
    len += (size_t)r;
  }
  close(fd);
  p[len] = '\0';
  a->p = p;
  a->len = len;
  return 0;
}

/* ---------------------------------------------------------------- the request */

typedef struct request {
  char method[64], target[4096];
  char hdr[NFIELDS - 2][1024]; /* Host, Authorization, Content-Type, Content-Encoding, Cookie */
  int has[NFIELDS - 2];
  const uint8_t *body;
  size_t body_len;
  int token_server;
} request;

enum { H_HOST, H_AUTH, H_CTYPE, H_CENC, H_COOKIE };
static const char *const hdr_names[] = {"Host", "Authorization", "Content-Type", "Content-Encoding", "Cookie"};

/* Copies field f[0..n) into out (cap bytes) without CR, LF, NUL, expanding @T and @C. */
static void copy_field(const uint8_t *f, size_t n, char *out, size_t cap, int expand)
{
  size_t o = 0;
  for(size_t i = 0; i < n && o + 1 < cap; i++) {
    if(f[i] == '\r' || f[i] == '\n' || f[i] == '\0')
      continue;
    if(expand && f[i] == '@' && i + 1 < n && (f[i + 1] == 'T' || f[i + 1] == 'C')) {
      const char *v = f[i + 1] == 'T' ? TOKEN : fx.cookie;
      size_t vn = strlen(v);
      if(o + vn + 1 < cap) {
        memcpy(out + o, v, vn);
        o += vn;
      }
      i++;
      continue;
    }
    out[o++] = (char)f[i];
  }
  out[o] = '\0';
}

static void parse_input(const uint8_t *data, size_t size, request *r)
{
  memset(r, 0, sizeof(*r));
  r->token_server = data[0] & 1;
  const uint8_t *p = data + 1, *end = data + size;
  for(int f = 0; f < NFIELDS && p <= end; f++) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if(f == 0)
      copy_field(p, n, r->method, sizeof(r->method), 0);
    else if(f == 1)
      copy_field(p, n, r->target, sizeof(r->target), 0);
    else {
      copy_field(p, n, r->hdr[f - 2], sizeof(r->hdr[0]), 1);
      r->has[f - 2] = r->hdr[f - 2][0] != '\0';
    }
    if(!nl) {
      p = end + 1;
      break;
    }
    p = nl + 1;
  }
  if(p <= end) {
    r->body = p;
    r->body_len = (size_t)(end - p);
  }
  /* a method is a token: libmicrohttpd would refuse one with spaces before routing */
  for(char *m = r->method; *m; m++)
    if(*m == ' ' || *m == '\t')
      *m = '_';
  if(!r->method[0])
    strcpy(r->method, "GET");
  /* the target: no spaces (they end it), and an origin-form path */
  char t[sizeof(r->target)];
  size_t o = 0;
  if(r->target[0] != '/')
    t[o++] = '/';
  for(const char *s = r->target; *s && o + 1 < sizeof(t); s++)
    if(*s != ' ' && *s != '\t')
      t[o++] = *s;
  t[o] = '\0';
  memcpy(r->target, t, o + 1);
}

/* The request as bytes; malloc'd. */
static char *render(const request *r, size_t *len)
{
  size_t cap = 8192 + r->body_len + NFIELDS * 1100;
  char *out = malloc(cap);
  if(!out)
    return NULL;
  int n = snprintf(out, cap, "%s %s HTTP/1.%d\r\n", r->method, r->target, r->has[H_HOST] ? 1 : 0);
  for(int i = 0; i < NFIELDS - 2; i++)
    if(r->has[i])
      n += snprintf(out + n, cap - (size_t)n, "%s: %s\r\n", hdr_names[i], r->hdr[i]);
  n += snprintf(out + n, cap - (size_t)n, "Connection: close\r\nContent-Length: %zu\r\n\r\n", r->body_len);
  if(r->body_len)
    memcpy(out + n, r->body, r->body_len);
  *len = (size_t)n + r->body_len;
  return out;
}

/* ---------------------------------------------------------------- what the answer may be */

static int hexval(char c)
{
  if(c >= '0' && c <= '9') return c - '0';
  if(c >= 'a' && c <= 'f') return c - 'a' + 10;
  if(c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The path as the server routes it: up to '?', %XX decoded (libmicrohttpd does so). */
static void route_path(const char *target, char *out, size_t cap)
{
  size_t o = 0;
  for(const char *s = target; *s && *s != '?' && o + 1 < cap; s++) {
    if(s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
      out[o++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
      s += 2;
    }
    else
      out[o++] = *s;
  }
  out[o] = '\0';
}

enum { HOST_ALLOWED, HOST_DENIED, HOST_UNSURE };

/* docs/api.md's DNS rebinding guard, for the Host values it is easy to be sure of: a name (a
 * letter in it, no IP literal can have one) other than localhost, *.localhost and the allowed
 * host must be refused; those and IPv4 literals, optionally with a port, must not be. */
static int host_class(const request *r)
{
  if(!r->has[H_HOST])
    return HOST_ALLOWED; /* HTTP/1.0 without Host: allowed */
  const char *v = r->hdr[H_HOST];
  size_t n = strcspn(v, ":");
  if(v[n] == ':') {
    for(const char *q = v + n + 1; *q; q++)
      if(*q < '0' || *q > '9')
        return HOST_UNSURE;
  }
  if(n == 0 || n > 200)
    return HOST_UNSURE;
  char host[256];
  memcpy(host, v, n);
  host[n] = '\0';
  if(host[n - 1] == '.')
    host[--n] = '\0';
  if(n == 0)
    return HOST_UNSURE;
  int letter = 0, digits_dots = 1;
  for(size_t i = 0; i < n; i++) {
    char ch = host[i];
    int is_letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
    if(!is_letter && !(ch >= '0' && ch <= '9') && ch != '.' && ch != '-')
      return HOST_UNSURE;
    letter |= is_letter;
    digits_dots &= !is_letter && ch != '-';
  }
  if(!strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost")) ||
     !strcasecmp(host, ALLOWED_HOST))
    return HOST_ALLOWED;
  if(letter)
    return HOST_DENIED;
  struct in_addr a4;
  if(digits_dots && inet_pton(AF_INET, host, &a4) == 1)
    return HOST_ALLOWED;
  return HOST_UNSURE;
}

/* With --token, whether the request might carry valid credentials (the exact token after
 * "Bearer ", or the login cookie); 0 only when it certainly does not. */
static int maybe_authorised(const request *r)
{
  return (r->has[H_AUTH] && strstr(r->hdr[H_AUTH], TOKEN)) || (r->has[H_COOKIE] && strstr(r->hdr[H_COOKIE], fx.cookie));
}

static const char *header_value(const answer *a, const char *name, char *out, size_t cap)
{
  size_t nl = strlen(name);
  const char *end = a->body ? a->body : a->p + a->len;
  for(const char *line = strstr(a->p, "\r\n"); line && line + 2 < end; line = strstr(line + 2, "\r\n")) {
    const char *h = line + 2;
    if(!strncasecmp(h, name, nl) && h[nl] == ':') {
      const char *v = h + nl + 1;
      while(*v == ' ')
        v++;
      size_t n = strcspn(v, "\r");
      if(n >= cap)
        n = cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return out;
    }
  }
  return NULL;
}

static const char *error_code(int status)
{
  switch(status) {
  case 400: return "invalid";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 413: return "too_large";
  case 415: return "unsupported_media_type";
  case 503: return "unavailable";
  default: return "internal";
  }
}

static int in_set(int status, const int *set)
{
  for(; *set; set++)
    if(*set == status)
      return 1;
  return 0;
}

/* Statuses schema/openapi.yaml documents for the route the path names (400 added everywhere:
 * libmicrohttpd refuses malformed requests itself before any route), beyond 403 for the Host. */
static const int *documented(const request *r, const char *path, int *is_api)
{
  static const int ingest[] = {200, 202, 400, 401, 405, 413, 415, 503, 0};
  static const int api_get[] = {200, 400, 401, 404, 405, 0};
  static const int api_delete[] = {200, 400, 401, 404, 405, 503, 0};
  static const int health[] = {200, 400, 405, 0};
  static const int metrics_[] = {200, 400, 401, 405, 0};
  static const int login_post[] = {204, 400, 401, 404, 0};
  static const int page[] = {200, 400, 404, 405, 0};
  *is_api = !strncmp(path, "/api/v1/", 8) || !strcmp(path, "/metrics");
  if(!strcmp(path, "/api/v1/ingest"))
    return ingest;
  if(!strncmp(path, "/api/", 5))
    return strcmp(r->method, "DELETE") ? api_get : api_delete;
  if(!strcmp(path, "/healthz"))
    return health;
  if(!strcmp(path, "/metrics"))
    return metrics_;
  if(!strcmp(path, "/login") && !strcmp(r->method, "POST"))
    return login_post;
  return page;
}

/* ---------------------------------------------------------------- the target */

static void check_answer(const request *r, answer *a)
{
  /* the status line and the header block */
  FUZZ_CHECK(a->len >= 12 && (!strncmp(a->p, "HTTP/1.1 ", 9) || !strncmp(a->p, "HTTP/1.0 ", 9)),
             "not an HTTP answer: %.80s", a->p);
  FUZZ_CHECK(a->p[9] >= '1' && a->p[9] <= '5' && a->p[10] >= '0' && a->p[10] <= '9' && a->p[11] >= '0' &&
             a->p[11] <= '9' && (a->p[12] == ' ' || a->p[12] == '\r'),
             "bad status line: %.80s", a->p);
  a->status = (a->p[9] - '0') * 100 + (a->p[10] - '0') * 10 + (a->p[11] - '0');
  /* libmicrohttpd 0.9.75 answers a request whose Cookie header ends in '="' (the last cookie's
   * value a lone quote) with a 431 of its own, before any callback of http.c, and sends that
   * answer's header block twice (crashes/README.md). Not the server's code and nothing it can
   * change: accepted in exactly that case, so that a campaign can look past it (http.c never
   * answers 431; to HEAD libmicrohttpd sends the two header blocks without its HTML body). */
  size_t cn = r->has[H_COOKIE] ? strlen(r->hdr[H_COOKIE]) : 0;
  if(a->status == 431 && cn >= 2 && !strcmp(r->hdr[H_COOKIE] + cn - 2, "=\"") &&
     !strncmp(a->p, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46))
    return;
  const char *eoh = strstr(a->p, "\r\n\r\n");
  FUZZ_CHECK(eoh, "the headers never end (%zu bytes)", a->len);
  a->body = eoh + 4;
  a->body_len = a->len - (size_t)(a->body - a->p);
  char v[256];
  const char *cl = header_value(a, "Content-Length", v, sizeof(v));
  int head = !strcmp(r->method, "HEAD");
  if(a->status == 204 || a->status == 304)
    FUZZ_CHECK(a->body_len == 0, "%d with a body", a->status);
  else if(!head) {
    FUZZ_CHECK(cl, "no Content-Length (status %d)", a->status);
    FUZZ_CHECK(strtoull(cl, NULL, 10) == a->body_len, "Content-Length %s, body %zu bytes", cl, a->body_len);
  }
  else
    FUZZ_CHECK(a->body_len == 0, "HEAD answered with a body of %zu bytes", a->body_len);

  char path[4096];
  route_path(r->target, path, sizeof(path));
  int is_api = 0;
  const int *allowed = documented(r, path, &is_api);
  int hc = host_class(r);
  if(hc == HOST_DENIED)
    FUZZ_CHECK(a->status == 403 || a->status == 400, "Host '%s' not refused: %d for %s %s", r->hdr[H_HOST],
               a->status, r->method, r->target);
  if(hc == HOST_ALLOWED)
    FUZZ_CHECK(a->status != 403, "Host '%s' refused: %s %s", r->has[H_HOST] ? r->hdr[H_HOST] : "(none)",
               r->method, r->target);
  /* 403 only ever comes from the Host guard */
  if(a->status != 403 || hc == HOST_ALLOWED)
    FUZZ_CHECK(in_set(a->status, allowed), "%d not documented for %s %s (path %s)", a->status, r->method,
               r->target, path);
  /* 5xx: only the documented 503s (busy storage, the memory budget), never a 500 */
  FUZZ_CHECK(a->status < 500 || a->status == 503, "%d for %s %s", a->status, r->method, r->target);
  /* with --token, nothing of the API is served without the token or the login cookie */
  if(r->token_server && is_api && strcmp(path, "/api/v1/ingest") && !maybe_authorised(r))
    FUZZ_CHECK(a->status >= 400, "%s %s served (%d) without credentials", r->method, r->target, a->status);
  if(r->token_server && !strcmp(path, "/api/v1/ingest") && !strcmp(r->method, "POST") &&
     !(r->has[H_AUTH] && strstr(r->hdr[H_AUTH], TOKEN)))
    FUZZ_CHECK(a->status >= 400, "ingest accepted (%d) without the token", a->status);
  if(a->status == 401)
    FUZZ_CHECK(header_value(a, "WWW-Authenticate", v, sizeof(v)) || !strcmp(path, "/login"),
               "401 without WWW-Authenticate");
  if(a->status == 503)
    FUZZ_CHECK(header_value(a, "Retry-After", v, sizeof(v)), "503 without Retry-After");
  /* the server's errors are JSON naming the status; libmicrohttpd's own 400s are HTML */
  const char *ct = header_value(a, "Content-Type", v, sizeof(v));
  if(a->status >= 400 && ct && !strncmp(ct, "application/json", 16) && !head) {
    cJSON *root = cJSON_ParseWithLength(a->body, a->body_len);
    FUZZ_CHECK(cJSON_IsObject(root), "%d: the error is not a JSON object: %.120s", a->status, a->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "detail");
    FUZZ_CHECK(cJSON_IsString(e) && !strcmp(e->valuestring, error_code(a->status)) && cJSON_IsString(d),
               "%d: error body %.120s", a->status, a->body);
    cJSON_Delete(root);
  }
  if(ct && !strncmp(ct, "application/json", 16))
    FUZZ_CHECK(header_value(a, "X-Content-Type-Options", v, sizeof(v)), "JSON without nosniff");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if(size < 1 || size > MAX_BODY / 2)
    return 0;
  if(!fx.ready)
    setup();
  request r;
  parse_input(data, size, &r);
  size_t len;
  char *req = render(&r, &len);
  if(!req)
    return 0;
  answer a;
  int rc = exchange(fx.port[r.token_server], req, len, &a);
  free(req);
  FUZZ_CHECK(rc == 0, "could not reach the server");
  check_answer(&r, &a);
  if(fuzz_feedback) { /* the server, the status, the method if a known one, the route, the Host */
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT"};
    const char *m = "other";
    for(size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
      if(!strcmp(r.method, methods[i]))
        m = methods[i];
    char path[4096], sig[160];
    route_path(r.target, path, sizeof(path));
    const char *rest = "";
    size_t seg = strcspn(path + 1, "/"); /* the first two segments, or a session's view */
    if(path[1 + seg] == '/')
      seg += 1 + strcspn(path + 2 + seg, "/");
    if(!strncmp(path, "/api/v1/sessions/", 17)) {
      seg = 16;
      rest = path + 17 + strcspn(path + 17, "/");
    }
    snprintf(sig, sizeof(sig), "routes:%d:%d:%s:%d:%d:%.*s:%.40s", r.token_server, a.status, m,
             host_class(&r), !!strchr(r.target, '?'), (int)(seg < 60 ? seg : 60), path + 1, rest);
    fuzz_feedback(sig);
  }
  free(a.p);
  return 0;
}
