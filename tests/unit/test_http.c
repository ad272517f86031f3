/* test_http.c — Check suite for server/http.c on its own: real http_server instances started
 * in-process on 127.0.0.1 port 0 over a temporary store and writer, asked with libcurl (or a raw
 * socket where a client must misbehave). Routing and 404s, 405 with Allow, the Host guard, token
 * and login-cookie auth, ingest answers (202, duplicate 200, 400/413/415), body and per-client
 * limits, the request deadline, and that every error body is {"error": code, "detail": text}. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check_run.h"
#include "dynbuf.h"
#include "gz.h"
#include "http.h"
#include "http_guard.h"
#include "log.h"
#include "metrics.h"
#include "http_fixture.h"
#include "store.h"
#include "store_fixture.h"
#include "writer.h"

#define TOKEN "unit-token-0123456789"
#define MAX_BODY 4096
#define PER_IP 4

enum { PLAIN, TOKENED, STRICT, NSERVERS }; /* STRICT: per-IP limit and a 1 s request deadline */

static struct {
  store_fixture st;
  membudget budget;
  http_server *h[NSERVERS];
  unsigned port[NSERVERS];
} fx;

static void fixture_up(void)
{
  log_set_level(LOG_ERROR);
  signal(SIGPIPE, SIG_IGN);
  ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
  store_fixture_up(&fx.st, "http", 4);
  membudget_init(&fx.budget, 64 << 20);
  for(int i = 0; i < NSERVERS; i++)
    fx.port[i] = http_fixture_start(&fx.st, &fx.budget, i == TOKENED ? TOKEN : NULL, MAX_BODY,
                                    i == STRICT ? PER_IP : 0, i == STRICT ? 1 : 60, &fx.h[i]);
}

static void fixture_down(void)
{
  for(int i = 0; i < NSERVERS; i++)
    http_stop(fx.h[i], 5000);
  store_fixture_down(&fx.st);
  curl_global_cleanup();
}

/* ---------------------------------------------------------------- one request */

typedef struct resp {
  int curl_rc;     /* CURLE_OK, or why no answer came */
  long status;
  dynbuf body, headers;
} resp;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
  dynbuf_append(arg, p, size * n);
  return size * n;
}

static void resp_free(resp *r)
{
  dynbuf_free(&r->body);
  dynbuf_free(&r->headers);
}

/* method path on server `which`, with the NULL-terminated extra headers and body (NULL: none).
 * curl's own defaults that would blur a test are switched off: Expect: 100-continue and a form
 * Content-Type for bodies. */
static resp ask(int which, const char *method, const char *path, const char *const *headers,
                const char *body, size_t blen)
{
  resp r;
  memset(&r, 0, sizeof r);
  dynbuf_init(&r.body, 8 << 20);
  dynbuf_init(&r.headers, 1 << 16);
  char url[512];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", fx.port[which], path);
  CURL *e = curl_easy_init();
  ck_assert_ptr_nonnull(e);
  struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
  int has_ct = 0;
  for(const char *const *h = headers; h && *h; h++) {
    hl = curl_slist_append(hl, *h);
    has_ct |= !strncasecmp(*h, "Content-Type:", 13);
  }
  if(body && !has_ct)
    hl = curl_slist_append(hl, "Content-Type:");
  ck_assert_ptr_nonnull(hl);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, check_wait_ms(30000) / 1000); /* longer under valgrind */
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  if(body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  }
  if(!strcmp(method, "HEAD"))
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if(strcmp(method, body ? "POST" : "GET"))
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  r.curl_rc = (int)curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(e);
  curl_slist_free_all(hl);
  return r;
}

static resp get(int which, const char *path, const char *const *headers)
{
  return ask(which, "GET", path, headers, NULL, 0);
}

/* The value of response header `name` (case-insensitive), "" when absent; static storage. */
static const char *header(const resp *r, const char *name)
{
  static char out[512];
  out[0] = '\0';
  size_t nl = strlen(name);
  for(const char *p = r->headers.data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
    if(!strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1;
      v += strspn(v, " ");
      size_t n = strcspn(v, "\r\n");
      snprintf(out, sizeof out, "%.*s", (int)(n < sizeof out ? n : sizeof out - 1), v);
      break;
    }
  }
  return out;
}

/* r is the JSON error `code` with `status`, and its detail contains `detail_part`. */
static void is_error(resp *r, long status, const char *code, const char *detail_part)
{
  ck_assert_msg(r->curl_rc == CURLE_OK, "no answer: %s", curl_easy_strerror(r->curl_rc));
  ck_assert_msg(r->status == status, "status %ld, not %ld: %s", r->status, status, r->body.data);
  ck_assert_str_eq(header(r, "Content-Type"), "application/json");
  cJSON *j = cJSON_Parse(r->body.data ? r->body.data : "");
  ck_assert_msg(j != NULL, "not JSON: %s", r->body.data);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
  ck_assert_msg(cJSON_IsString(e) && !strcmp(e->valuestring, code), "error: %s", r->body.data);
  ck_assert_msg(cJSON_IsString(d) && strstr(d->valuestring, detail_part), "detail: %s", r->body.data);
  cJSON_Delete(j);
  resp_free(r);
}

static void is_status(resp *r, long status)
{
  ck_assert_msg(r->curl_rc == CURLE_OK, "no answer: %s", curl_easy_strerror(r->curl_rc));
  ck_assert_msg(r->status == status, "status %ld, not %ld: %s", r->status, status, r->body.data);
}

static const char *const JSON_CT[] = {"Content-Type: application/json", NULL};
static const char *const BEARER[] = {"Authorization: Bearer " TOKEN, NULL};
static const char *const BEARER_JSON[] = {"Authorization: Bearer " TOKEN, "Content-Type: application/json", NULL};

static resp ingest(int which, const char *const *headers, const char *body)
{
  return ask(which, "POST", "/api/v1/ingest", headers ? headers : JSON_CT, body, strlen(body));
}

#define BATCH(b, s) "{\"v\":1,\"batch\":\"" b "\",\"session\":\"" s "\",\"meta\":{\"name\":\"n\"}," \
                    "\"events\":[{\"k\":\"task\",\"id\":1,\"t\":0},{\"k\":\"end\",\"t\":5}]}"

/* ---------------------------------------------------------------- tests */

START_TEST(routes_and_404s)
{
  resp r = get(PLAIN, "/healthz", NULL);
  is_status(&r, 200);
  ck_assert_ptr_nonnull(strstr(r.body.data, "\"ok\":true"));
  resp_free(&r);
  r = ingest(PLAIN, NULL, BATCH("b-route", "s-route"));
  is_status(&r, 202);
  resp_free(&r);
  r = get(PLAIN, "/api/v1/sessions", NULL);
  is_status(&r, 200);
  ck_assert_ptr_nonnull(strstr(r.body.data, "\"s-route\""));
  resp_free(&r);
  static const char *const views[] = {"", "/tasks", "/awaits", "/blocks", "/lag", "/concurrency",
                                      "/timeline", "/export", "/export?format=chrome"};
  for(size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "/api/v1/sessions/s-route%s", views[i]);
    r = get(PLAIN, path, NULL);
    is_status(&r, 200);
    ck_assert_msg(r.body.len > 1, "%s: empty", path);
    resp_free(&r);
  }
  r = get(PLAIN, "/", NULL);
  is_status(&r, 200);
  ck_assert_ptr_nonnull(strstr(header(&r, "Content-Type"), "text/html"));
  ck_assert_ptr_nonnull(strstr(header(&r, "Content-Security-Policy"), "frame-ancestors 'self'"));
  resp_free(&r);
  r = get(PLAIN, "/sessions/s-route", NULL);
  is_status(&r, 200);
  resp_free(&r);
  r = get(PLAIN, "/metrics", NULL);
  is_status(&r, 200);
  ck_assert_ptr_nonnull(strstr(header(&r, "Content-Type"), "text/plain"));
  resp_free(&r);
  r = get(PLAIN, "/api/v1/sessions/s-route/export?format=xml", NULL);
  is_error(&r, 400, "invalid", "format: expected json, chrome or otlp");
  static const struct { const char *path, *detail; } missing[] = {
    {"/api/v1/sessions/s-none", "no such session"},
    {"/api/v1/sessions/a%20b", "no such session"}, /* no session can have that id */
    {"/api/v1/sessions/s-route/nope", "no such endpoint"},
    {"/api/v1/nope", "no such endpoint"},
    {"/sessions/a%20b", "no such session"},
    {"/nope", "no such page"},
    {"/static/nope.js", "no such page"},
  };
  for(size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
    r = get(PLAIN, missing[i].path, NULL);
    is_error(&r, 404, "not_found", missing[i].detail);
  }
  r = get(PLAIN, "/api/v1/sessions/s-route/timeline?px=abc", NULL);
  ck_assert_int_eq(r.status, 400);
  resp_free(&r);
  /* DELETE answers the id, then the session is gone */
  r = ask(PLAIN, "DELETE", "/api/v1/sessions/s-route", NULL, NULL, 0);
  is_status(&r, 200);
  ck_assert_str_eq(r.body.data, "{\"deleted\":\"s-route\"}");
  resp_free(&r);
  r = ask(PLAIN, "DELETE", "/api/v1/sessions/s-route", NULL, NULL, 0);
  is_error(&r, 404, "not_found", "no such session");
}
END_TEST

START_TEST(methods_answer_405_with_allow)
{
  static const struct { const char *method, *path, *allow; } cases[] = {
    {"PUT", "/api/v1/sessions", "GET, HEAD"},
    {"GET", "/api/v1/ingest", "POST"},
    {"POST", "/api/v1/endpoints", "GET, HEAD"},
    {"PATCH", "/api/v1/sessions/s-x", "GET, HEAD, DELETE"},
    {"POST", "/api/v1/sessions/s-x/tasks", "GET, HEAD"},
    {"DELETE", "/api/v1/sessions/s-x/export", "GET, HEAD"},
    {"POST", "/healthz", "GET, HEAD"},
    {"DELETE", "/", "GET, HEAD"},
    {"PUT", "/login", "GET, HEAD, POST"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    resp r = ask(PLAIN, cases[i].method, cases[i].path, NULL, NULL, 0);
    ck_assert_msg(r.status == 405, "%s %s: %ld", cases[i].method, cases[i].path, r.status);
    ck_assert_str_eq(header(&r, "Allow"), cases[i].allow);
    is_error(&r, 405, "method_not_allowed", "");
  }
  resp r = ask(PLAIN, "HEAD", "/api/v1/sessions", NULL, NULL, 0); /* HEAD is a GET */
  is_status(&r, 200);
  resp_free(&r);
  r = ask(PLAIN, "POST", "/api/v2/anything", NULL, "x", 1);
  is_error(&r, 404, "not_found", "");
}
END_TEST

START_TEST(host_guard)
{
  static const char *const ok[] = {"Host: localhost", "Host: localhost:7878", "Host: 127.0.0.1:1",
                                   "Host: [::1]:80", "Host: allowed.test", "Host: ALLOWED.test.",
                                   "Host: 10.1.2.3"};
  for(size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    const char *h[] = {ok[i], NULL};
    resp r = get(PLAIN, "/healthz", h);
    ck_assert_msg(r.status == 200, "%s: %ld", ok[i], r.status);
    resp_free(&r);
  }
  static const char *const refused[] = {"Host: evil.example", "Host: localhost.evil.example",
                                        "Host: allowed.test.evil", "Host: 127.0.0.1:notaport"};
  for(size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    const char *h[] = {refused[i], NULL};
    resp r = get(PLAIN, "/api/v1/sessions", h);
    is_error(&r, 403, "forbidden", "DNS rebinding");
  }
  /* also for a POST with a body: answered 403 after the body is read, never stored */
  const char *h[] = {"Host: evil.example", "Content-Type: application/json", NULL};
  resp r = ingest(PLAIN, h, BATCH("b-evil", "s-evil"));
  is_error(&r, 403, "forbidden", "'evil.example'");
  r = get(PLAIN, "/api/v1/sessions/s-evil", NULL);
  is_error(&r, 404, "not_found", "");
  ck_assert_int_eq(http_host_name_ok("*"), 1);
  ck_assert_int_eq(http_host_name_ok("a.b-c_d"), 1);
  ck_assert_int_eq(http_host_name_ok("a.b:1"), 0); /* names only: IP addresses need no entry */
  ck_assert_int_eq(http_host_name_ok(""), 0);
  ck_assert_int_eq(http_host_name_ok("a/b"), 0);
}
END_TEST

START_TEST(token_and_login_cookie)
{
  resp r = get(TOKENED, "/api/v1/sessions", NULL);
  ck_assert_str_eq(header(&r, "WWW-Authenticate"), "Bearer realm=\"loopscope\"");
  is_error(&r, 401, "unauthorized", "Authorization: Bearer");
  const char *wrong[] = {"Authorization: Bearer " TOKEN "x", NULL};
  r = get(TOKENED, "/api/v1/sessions", wrong);
  is_error(&r, 401, "unauthorized", "");
  const char *basic[] = {"Authorization: Basic " TOKEN, NULL};
  r = get(TOKENED, "/api/v1/sessions", basic);
  is_error(&r, 401, "unauthorized", "");
  r = get(TOKENED, "/api/v1/sessions", BEARER);
  is_status(&r, 200);
  resp_free(&r);
  r = get(TOKENED, "/healthz", NULL); /* health needs no token, metrics do */
  is_status(&r, 200);
  resp_free(&r);
  r = get(TOKENED, "/metrics", NULL);
  is_error(&r, 401, "unauthorized", "");
  r = ingest(TOKENED, NULL, BATCH("b-tok", "s-tok"));
  is_error(&r, 401, "unauthorized", "Authorization: Bearer");
  r = ingest(TOKENED, BEARER_JSON, BATCH("b-tok", "s-tok"));
  is_status(&r, 202);
  resp_free(&r);

  /* the login page's path: POST /login with the token sets an HttpOnly SameSite=Strict cookie */
  r = ask(TOKENED, "POST", "/login", wrong, "", 0);
  is_error(&r, 401, "unauthorized", "wrong token");
  r = ask(TOKENED, "POST", "/login", BEARER, "", 0);
  is_status(&r, 204);
  char setc[512];
  snprintf(setc, sizeof setc, "%s", header(&r, "Set-Cookie"));
  resp_free(&r);
  ck_assert_ptr_nonnull(strstr(setc, "HttpOnly"));
  ck_assert_ptr_nonnull(strstr(setc, "SameSite=Strict"));
  ck_assert_ptr_null(strstr(setc, TOKEN)); /* the cookie is not the token */
  char cookie[600];
  snprintf(cookie, sizeof cookie, "Cookie: other=1; %.*s", (int)strcspn(setc, ";"), setc);
  const char *with_cookie[] = {cookie, NULL};
  r = get(TOKENED, "/api/v1/sessions", with_cookie);
  is_status(&r, 200);
  resp_free(&r);
  const char *cookie_json[] = {cookie, "Content-Type: application/json", NULL};
  r = ingest(TOKENED, cookie_json, BATCH("b-tok2", "s-tok")); /* a browser's cookie does not ingest */
  is_error(&r, 401, "unauthorized", "");
  const char *bad_cookie[] = {"Cookie: loopscope_auth=0000", NULL};
  r = get(TOKENED, "/api/v1/sessions", bad_cookie);
  is_error(&r, 401, "unauthorized", "");
  const char *logout[] = {"X-Loopscope-Logout: 1", NULL};
  r = ask(TOKENED, "POST", "/login", logout, "", 0);
  is_status(&r, 204);
  ck_assert_ptr_nonnull(strstr(header(&r, "Set-Cookie"), "Max-Age=0"));
  resp_free(&r);
  r = ask(PLAIN, "POST", "/login", BEARER, "", 0); /* no --token: nothing to log in to */
  is_error(&r, 404, "not_found", "no --token");
  r = get(TOKENED, "/login", NULL); /* the page itself is public */
  is_status(&r, 200);
  resp_free(&r);
}
END_TEST

START_TEST(ingest_answers)
{
  resp r = ingest(PLAIN, NULL, BATCH("b-ing", "s-ing"));
  is_status(&r, 202);
  ck_assert_str_eq(r.body.data, "{\"accepted\":2}");
  resp_free(&r);
  r = ingest(PLAIN, NULL, BATCH("b-ing", "s-ing")); /* a retry of a stored batch */
  is_status(&r, 200);
  ck_assert_str_eq(r.body.data, "{\"accepted\":2,\"duplicate\":true}");
  resp_free(&r);
  const char *charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
  r = ingest(PLAIN, charset, BATCH("b-ing2", "s-ing"));
  is_status(&r, 202);
  resp_free(&r);
  const char *text[] = {"Content-Type: text/plain", NULL};
  r = ingest(PLAIN, text, BATCH("b-ing3", "s-ing"));
  is_error(&r, 415, "unsupported_media_type", "application/json");
  const char *br[] = {"Content-Type: application/json", "Content-Encoding: br", NULL};
  r = ingest(PLAIN, br, BATCH("b-ing3", "s-ing"));
  is_error(&r, 415, "unsupported_media_type", "gzip or identity");
  r = ingest(PLAIN, NULL, "{\"v\":2}");
  is_error(&r, 400, "invalid", "v");
  r = ingest(PLAIN, NULL, "not json");
  is_error(&r, 400, "invalid", "body");

  /* gzip: decoded and stored; corrupt gzip is a 400 that says so */
  static const char batch[] = BATCH("b-gz", "s-ing");
  size_t zlen = 0;
  char *z = gz_compress(batch, sizeof batch - 1, 6, &zlen);
  ck_assert_ptr_nonnull(z);
  const char *gz[] = {"Content-Type: application/json", "Content-Encoding: gzip", NULL};
  r = ask(PLAIN, "POST", "/api/v1/ingest", gz, z, zlen);
  is_status(&r, 202);
  resp_free(&r);
  z[zlen / 2] ^= 0x55;
  r = ask(PLAIN, "POST", "/api/v1/ingest", gz, z, zlen);
  is_error(&r, 400, "invalid", "gzip");
  free(z);
}
END_TEST

START_TEST(body_limits)
{
  /* over --max-body as sent: 413, read and answered (no reset) */
  size_t n = MAX_BODY + 100;
  char *big = malloc(n + 1);
  ck_assert_ptr_nonnull(big);
  memset(big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  big[n] = '\0';
  resp r = ask(PLAIN, "POST", "/api/v1/ingest", JSON_CT, big, n);
  is_error(&r, 413, "too_large", "--max-body");
  /* within it as sent, over it once decoded: 413 that says so */
  size_t zlen = 0;
  char *z = gz_compress(big, n, 9, &zlen);
  ck_assert_ptr_nonnull(z);
  ck_assert_uint_lt(zlen, MAX_BODY);
  const char *gz[] = {"Content-Type: application/json", "Content-Encoding: gzip", NULL};
  r = ask(PLAIN, "POST", "/api/v1/ingest", gz, z, zlen);
  is_error(&r, 413, "too_large", "once decompressed");
  free(z);
  /* a body sent to a page is read up to a bound and refused */
  r = ask(PLAIN, "POST", "/api/v1/sessions", NULL, big, n);
  is_error(&r, 405, "method_not_allowed", "");
  free(big);
}
END_TEST

static int connect_raw(unsigned port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

static int64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* 1 when a keep-alive GET /healthz on fd is answered 200. */
static int served_on(int fd)
{
  static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if(send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
    return 0;
  char buf[1024];
  ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
  return got > 12 && !strncmp(buf, "HTTP/1.1 200", 12);
}

/* Waits (at most ms) for the server to close fd: 1 when it did. */
static int closed_within(int fd, int ms)
{
  int64_t end = now_ms() + ms;
  char buf[512];
  for(;;) {
    int left = (int)(end - now_ms());
    if(left <= 0)
      return 0;
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, left);
    if(rc < 0 && errno == EINTR)
      continue;
    if(rc <= 0)
      return 0;
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if(got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
      return 1;
  }
}

/* PER_IP connections from 127.0.0.1 are served; one more is closed at once; once one of them
 * goes, a new client is served again. Polls with deadlines: the server notices closes in its own
 * time. */
START_TEST(per_ip_limit)
{
  int fds[PER_IP];
  for(int i = 0; i < PER_IP; i++)
    fds[i] = connect_raw(fx.port[STRICT]);
  /* the connections must be registered before the next one counts: a request on each proves it */
  for(int i = 0; i < PER_IP; i++)
    ck_assert_msg(served_on(fds[i]), "connection %d was not served", i + 1);
  resp r = get(STRICT, "/healthz", NULL);
  ck_assert_msg(r.curl_rc != CURLE_OK, "connection %d was served (status %ld)", PER_IP + 1, r.status);
  resp_free(&r);
  close(fds[0]);
  int served = 0;
  for(int64_t end = now_ms() + 10000; !served && now_ms() < end;) {
    r = get(STRICT, "/healthz", NULL);
    served = r.curl_rc == CURLE_OK && r.status == 200;
    resp_free(&r);
    if(!served)
      nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  }
  ck_assert_msg(served, "no room made by closing a connection");
  for(int i = 1; i < PER_IP; i++)
    close(fds[i]);
}
END_TEST

/* A request whose headers never finish is dropped after --request-timeout (1 s here), however
 * it drips; the bound is generous (10 s) because the machine may be busy. */
START_TEST(request_deadline)
{
  /* a connection that is served first (the previous test's may still count against the per-IP
   * limit for a moment); the deadline of the next request starts with that answer */
  int fd = -1;
  int64_t t0 = 0; /* before the answer that starts the deadline: the drop cannot come sooner */
  for(int64_t end = now_ms() + 10000; fd < 0 && now_ms() < end;) {
    fd = connect_raw(fx.port[STRICT]);
    t0 = now_ms();
    if(!served_on(fd)) {
      close(fd);
      fd = -1;
      nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
  }
  ck_assert_int_ge(fd, 0);
  static const char part[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n";
  ck_assert_int_eq(send(fd, part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)(sizeof part - 1));
  int dropped = 0;
  for(int i = 0; i < 40 && !dropped; i++) { /* a byte every 250 ms resets no deadline */
    send(fd, "X", 1, MSG_NOSIGNAL);
    dropped = closed_within(fd, 250);
  }
  ck_assert_msg(dropped, "a dripping request kept its connection for 10 s");
  ck_assert_int_ge(now_ms() - t0, 1000); /* not before its deadline (the server's clock is ours) */
  close(fd);
}
END_TEST

/* The guard's rules as pure functions (http_guard.c), cases the servers above cannot all reach:
 * trailing dots, bracketed v6 with and without port, bad ports, cookies among others, secrets of
 * other lengths (same_secret compares without stopping at the first difference). */
START_TEST(guard_rules)
{
  const char *allowed[] = {"dev.example."};
  ck_assert(guard_host_ok(allowed, 1, "", NULL));
  ck_assert(guard_host_ok(allowed, 1, "", "localhost:7878"));
  ck_assert(guard_host_ok(allowed, 1, "", "api.localhost."));
  ck_assert(guard_host_ok(allowed, 1, "", "127.0.0.1"));
  ck_assert(guard_host_ok(allowed, 1, "", "[::1]:80"));
  ck_assert(!guard_host_ok(allowed, 1, "", "::1"));          /* v6 only in brackets */
  ck_assert(guard_host_ok(allowed, 1, "", "DEV.example:1"));  /* case, allowed's trailing dot */
  ck_assert(guard_host_ok(allowed, 1, "box", "box."));
  ck_assert(!guard_host_ok(allowed, 1, "box", "evil.example"));
  ck_assert(!guard_host_ok(allowed, 1, "", "localhost:80x"));
  ck_assert(!guard_host_ok(allowed, 1, "", "[::1"));
  ck_assert(!guard_host_ok(allowed, 1, "", ""));
  const char *any[] = {"*"};
  ck_assert(guard_host_ok(any, 1, "", "evil.example"));
  char out[64];
  ck_assert_int_eq(guard_host_part("[fe80::1]:9", out, sizeof out), 0);
  ck_assert_str_eq(out, "fe80::1");
  ck_assert_int_eq(guard_host_part("a.example.:1", out, sizeof out), 0);
  ck_assert_str_eq(out, "a.example");
  ck_assert_int_eq(guard_host_part("x", out, 1), -1);
  char detail[256];
  guard_host_refusal("ev\x01il", detail, sizeof detail);
  ck_assert_ptr_nonnull(strstr(detail, "Host 'ev?il' is not allowed"));

  ck_assert(guard_token_ok(NULL, NULL, NULL, NULL));
  ck_assert(guard_token_ok("s3cret", "c00k", "Bearer s3cret", NULL));
  ck_assert(guard_token_ok("s3cret", "c00k", "bearer s3cret", NULL));
  ck_assert(!guard_token_ok("s3cret", "c00k", "Bearer s3cre", NULL));
  ck_assert(!guard_token_ok("s3cret", "c00k", "Bearer s3cretX", NULL));
  ck_assert(!guard_token_ok("s3cret", "c00k", "Basic s3cret", NULL));
  ck_assert(guard_token_ok("s3cret", "c00k", NULL, "a=1; " GUARD_COOKIE_NAME "=c00k ; b=2"));
  ck_assert(!guard_token_ok("s3cret", "c00k", NULL, GUARD_COOKIE_NAME "=c00"));
  ck_assert(!guard_token_ok("s3cret", "c00k", NULL, "x" GUARD_COOKIE_NAME "=c00k"));
  ck_assert(!guard_token_ok("s3cret", "c00k", NULL, GUARD_COOKIE_NAME "="));
  ck_assert(!guard_token_ok("s3cret", "c00k", NULL, NULL)); /* the cookie not considered */
}
END_TEST

static Suite *http_suite(void)
{
  Suite *s = suite_create("http");
  TCase *c = tcase_create("http");
  tcase_set_timeout(c, 120);
  tcase_add_unchecked_fixture(c, fixture_up, fixture_down);
  tcase_add_test(c, routes_and_404s);
  tcase_add_test(c, methods_answer_405_with_allow);
  tcase_add_test(c, host_guard);
  tcase_add_test(c, guard_rules);
  tcase_add_test(c, token_and_login_cookie);
  tcase_add_test(c, ingest_answers);
  tcase_add_test(c, body_limits);
  tcase_add_test(c, per_ip_limit);
  tcase_add_test(c, request_deadline);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(http_suite());
}
