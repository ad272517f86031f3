/* http.c — libmicrohttpd front (http.h): routing, bodies and limits, gzip both ways, bearer
 * auth and the Host guard (their rules: http_guard.c), security headers, JSON errors, embedded
 * pages. It decides status codes and headers; connection limits and arrival deadlines are
 * http_conns.c's; query.c/export.c write answers, parse_pool.c decodes and ingest.c validates
 * bodies, writer.c stores. */
#include "http.h"
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "arena.h"
#include "assets.h"
#include "export.h"
#include "gz.h"
#include "log.h"
#include "otlp_trace.h"
#include "query.h"

#define DISCARD_MAX ((size_t)64 << 20) /* body bytes past what could be kept read to answer an error */
#define GZIP_MIN 1024                  /* smaller answers are sent as they are */


/* ------------------------------------------------------------------ connections */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
  http_server *h = cls;
  if(code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_slot *s = http_conns_opened(&h->conns, ci ? ci->connect_fd : -1);
    if(!s && ci) /* no slot, no deadline: refuse the connection rather than serve it unguarded */
      shutdown(ci->connect_fd, SHUT_RDWR);
    *socket_context = s;
    return;
  }
  if(*socket_context)
    http_conns_closed(&h->conns, *socket_context);
  *socket_context = NULL;
}

/* The connection's request has arrived whole (receiving = 0), or its answer was sent and the
 * next one is awaited (receiving = 1, the deadline starting now). */
static void conn_receiving(http_server *h, struct MHD_Connection *c, int receiving)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  if(ci && ci->socket_context)
    http_conns_receiving(&h->conns, ci->socket_context, receiving);
}

/* ------------------------------------------------------------------ responses */

static const char *error_code(unsigned status)
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

static int accepts_gzip(struct MHD_Connection *c)
{
  const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  return ae && strstr(ae, "gzip") != NULL;
}

/* Sends body (malloc'd, ownership taken; NULL for empty) with the headers every answer has. */
static enum MHD_Result send_body(http_server *h, struct MHD_Connection *c, req *rq, unsigned status,
                                 const char *ctype, char *body, size_t len, int html)
{
  int gz = 0;
  if(len >= GZIP_MIN && accepts_gzip(c)) {
    size_t zlen = 0;
    char *z = gz_compress(body, len, 1, &zlen); /* NULL: sent plain */
    if(z) {
      free(body);
      body = z;
      len = zlen;
      gz = 1;
    }
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body ? body : (char *)"",
                                                            body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if(!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if(gz)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  if(len >= GZIP_MIN || gz)
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
  if(html) {
    MHD_add_response_header(r, "Content-Security-Policy", h->csp);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  }
  else
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if(status == 503)
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if(rq->ingest) /* what ingest takes beyond plain v1 (docs/api.md): a collector reads it */
    MHD_add_response_header(r, "X-Loopscope-Ingest", HTTP_INGEST_TAKES);
  if(status == 401)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"loopscope\"");
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  rq->responded = 1;
  metrics_add(&h->m->http_requests, 1);
  return ok;
}

enum MHD_Result http_send_error(http_server *h, struct MHD_Connection *c, req *rq, unsigned status,
                                  const char *detail, const char *allow)
{
  jbuf b;
  jbuf_init(&b, 64 * 1024);
  jbuf_puts(&b, "{\"error\":");
  jbuf_str(&b, error_code(status));
  jbuf_puts(&b, ",\"detail\":");
  jbuf_str(&b, detail);
  jbuf_puts(&b, "}");
  if(jbuf_status(&b)) {
    jbuf_free(&b);
    return MHD_NO;
  }
  size_t len;
  char *p = jbuf_take(&b, &len);
  if(!allow)
    return send_body(h, c, rq, status, "application/json", p, len, 0);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
  if(!r) {
    free(p);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  rq->responded = 1;
  metrics_add(&h->m->http_requests, 1);
  return ok;
}

enum MHD_Result http_send_json(http_server *h, struct MHD_Connection *c, req *rq, unsigned status, jbuf *b)
{
  size_t len;
  char *p = jbuf_take(b, &len);
  return send_body(h, c, rq, status, "application/json", p, len, 0);
}

#define CORRUPT_DETAIL "the database file is corrupt (SQLite: database disk image is malformed); " \
                       "retrying will not help: see the server's log"

/* A request that met SQLITE_CORRUPT/NOTADB: 500, not 503 (no retry can pass), the first time
 * logged as an error with what to do, and /healthz unhealthy from then on. */
enum MHD_Result http_send_corrupt(http_server *h, struct MHD_Connection *c, req *rq)
{
  if(atomic_exchange(&h->corrupt, 1) == 0)
    log_msg(LOG_ERROR, "the database file is corrupt: answering 500 where it is read or written. Stop the "
            "server, move the file aside (`sqlite3 FILE .recover` may save what is readable) and start "
            "again with a new one");
  return http_send_error(h, c, rq, 500, CORRUPT_DETAIL, NULL);
}

/* ------------------------------------------------------------------ ingest */

/* With --token: the request carries 'Authorization: Bearer <token>', or (cookie_ok) the login
 * cookie POST /login set in a browser (the rule is http_guard.c's). */
int http_token_ok(http_server *h, struct MHD_Connection *c, int cookie_ok)
{
  /* The Cookie header is read here rather than through MHD_COOKIE_KIND: libmicrohttpd 0.9.75
   * reads uninitialised memory looking up a cookie whose value is empty (valgrind). */
  return guard_token_ok(h->cfg.token, h->cookie,
                        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                        cookie_ok ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE) : NULL);
}

#define UNAUTHORIZED "a valid 'Authorization: Bearer <token>' header (or the page's login) is required"

/* The media type of a header value, without parameters: "application/json; charset=utf-8". */
int http_media_is(const char *v, const char *type)
{
  if(!v)
    return 0;
  while(*v == ' ' || *v == '\t')
    v++;
  size_t n = strlen(type);
  if(strncasecmp(v, type, n) != 0)
    return 0;
  v += n;
  while(*v == ' ' || *v == '\t')
    v++;
  return *v == '\0' || *v == ';';
}

/* The body bytes read of a request before it is answered: an ingest body within --max-body is
 * kept whole, and an error is answered after the body, so a client that sends all of it before
 * reading sees the answer rather than a reset connection; past DISCARD_MAX bytes more than a
 * body that could be kept, dropping them is not worth the wait. */
size_t http_read_max(const http_server *h, const req *rq)
{
  return (rq->ingest ? h->cfg.max_body : 0) + DISCARD_MAX;
}

/* Ingest requests (headers, bodies, the parse pool and the writer): http_ingest.c. */

/* ------------------------------------------------------------------ reads */

const char *http_get_arg(void *ctx, const char *name)
{
  return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

enum MHD_Result http_answer_query(http_server *h, struct MHD_Connection *c, req *rq, int rc, jbuf *out,
                                  const char *detail)
{
  switch(rc) {
  case 0: return http_send_json(h, c, rq, 200, out);
  case LS_ENOTFOUND: jbuf_free(out); return http_send_error(h, c, rq, 404, "no such session", NULL);
  case LS_EINVAL: jbuf_free(out); return http_send_error(h, c, rq, 400, detail, NULL);
  case LS_ETOOBIG: jbuf_free(out); return http_send_error(h, c, rq, 500, "the answer is too large", NULL);
  case LS_ECORRUPT: jbuf_free(out); return http_send_corrupt(h, c, rq);
  /* the storage cannot do it now (e.g. /rows of a tree too large to order in memory while the
   * database refuses writes): 503 + Retry-After, as ingest answers */
  case LS_EBUSY: jbuf_free(out); return http_send_error(h, c, rq, 503, "storage is busy; retry later", NULL);
  default:
    jbuf_free(out);
    log_msg(LOG_WARN, "query failed: %s (%d)", ls_strerror(rc), rc);
    return http_send_error(h, c, rq, 500, "the query failed", NULL);
  }
}

static enum MHD_Result run_query(http_server *h, struct MHD_Connection *c, req *rq, query_fn fn,
                                 const char *id)
{
  /* The first /rows of a session builds its task tree (seconds at 1M tasks), /tasks of a large
   * session without stored keys orders every task: on a thread of their own, or every connection
   * libmicrohttpd bound to this thread would wait for them. */
  query_args a = {http_get_arg, c};
  if(((fn == query_rows && query_rows_must_build(h->s, id)) || (fn == query_tasks && query_tasks_heavy(h->s, id, &a))) &&
     http_offload_query(h, c, rq, fn, id))
    return MHD_YES;
  jbuf out;
  jbuf_init(&out, RESPONSE_MAX);
  char detail[256] = "";
  int rc = fn(h->s, id, &a, &out, detail, sizeof(detail));
  return http_answer_query(h, c, rq, rc, &out, detail);
}

static const struct { const char *name; query_fn fn; } session_views[] = {
  {"tasks", query_tasks}, {"awaits", query_awaits}, {"blocks", query_blocks}, {"lag", query_lag},
  {"concurrency", query_concurrency}, {"timeline", query_timeline}, {"rows", query_rows},
};

static enum MHD_Result handle_export(http_server *h, struct MHD_Connection *c, req *rq, const char *id)
{
  const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
  if(!fmt)
    fmt = "json";
  if(strcmp(fmt, "json") && strcmp(fmt, "chrome") && strcmp(fmt, "otlp"))
    return http_send_error(h, c, rq, 400, "format: expected json, chrome or otlp", NULL);
  jbuf out;
  jbuf_init(&out, RESPONSE_MAX);
  /* OTLP with the timeline URL attribute when the public URL is known */
  int rc = strcmp(fmt, "otlp") ? export_session(h->s, id, fmt, &out)
                               : otlp_trace_export(h->s, id, h->cfg.public_url, &out);
  if(rc)
    return http_answer_query(h, c, rq, rc, &out, "");
  const char *type = export_media_type(fmt, &out);
  size_t len;
  char *p = jbuf_take(&out, &len);
  return send_body(h, c, rq, 200, type, p, len, 0);
}

static int is_get(const char *method)
{
  return !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
}

/* GET .../events: a live event stream of the session `id` (NULL: of the sessions list). */
static enum MHD_Result open_stream(http_server *h, struct MHD_Connection *c, req *rq, const char *method,
                                   const char *id)
{
  if(strcmp(method, MHD_HTTP_METHOD_GET))
    return http_send_error(h, c, rq, 405, "an event stream takes GET", "GET");
  struct MHD_Response *r = NULL;
  int rc = live_open(h->live, c, id, &r);
  if(rc == LS_ENOTFOUND)
    return http_send_error(h, c, rq, 404, "no such session", NULL);
  if(rc == LS_EBUSY)
    return http_send_error(h, c, rq, 503, "too many live event streams are open (--max-streams); retry later", NULL);
  if(rc) {
    log_msg(LOG_WARN, "event stream: %s (%d)", ls_strerror(rc), rc);
    return http_send_error(h, c, rq, 500, "the event stream could not be opened", NULL);
  }
  enum MHD_Result ok = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  rq->responded = 1;
  metrics_add(&h->m->http_requests, 1);
  return ok;
}

/* /api/v1/<rest> other than ingest. */
static enum MHD_Result route_api(http_server *h, struct MHD_Connection *c, req *rq, const char *rest,
                                 const char *method)
{
  if(!http_token_ok(h, c, 1))
    return http_send_error(h, c, rq, 401, UNAUTHORIZED, NULL);
  if(!strcmp(rest, "ingest"))
    return http_send_error(h, c, rq, 405, "ingest takes POST", "POST");
  if(!strcmp(rest, "sessions")) {
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "sessions takes GET", "GET, HEAD");
    return run_query(h, c, rq, query_sessions, NULL);
  }
  if(!strcmp(rest, "events"))
    return open_stream(h, c, rq, method, NULL);
  if(!strcmp(rest, "endpoints") || !strcmp(rest, "compare")) {
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "this query takes GET", "GET, HEAD");
    return run_query(h, c, rq, rest[0] == 'e' ? query_endpoints : query_compare, NULL);
  }
  if(strncmp(rest, "sessions/", 9) != 0)
    return http_send_error(h, c, rq, 404, "no such endpoint", NULL);
  char id[130];
  const char *p = rest + 9;
  size_t n = strcspn(p, "/");
  if(n == 0 || n >= sizeof(id))
    return http_send_error(h, c, rq, 404, "no such session", NULL);
  memcpy(id, p, n);
  id[n] = '\0';
  if(!ingest_id_ok(id))
    return http_send_error(h, c, rq, 404, "no such session", NULL);
  const char *sub = p[n] == '/' ? p + n + 1 : NULL;
  if(!sub) {
    if(!strcmp(method, MHD_HTTP_METHOD_DELETE)) {
      memcpy(rq->delete_id, id, n + 1);
      rq->job = (writer_job){.delete_id = rq->delete_id};
      return http_submit_job(h, c, rq);
    }
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "a session takes GET or DELETE", "GET, HEAD, DELETE");
    return run_query(h, c, rq, query_session, id);
  }
  for(size_t i = 0; i < sizeof(session_views) / sizeof(session_views[0]); i++) {
    if(strcmp(sub, session_views[i].name))
      continue;
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "this view takes GET", "GET, HEAD");
    return run_query(h, c, rq, session_views[i].fn, id);
  }
  if(!strcmp(sub, "events"))
    return open_stream(h, c, rq, method, id);
  if(!strcmp(sub, "export")) {
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "export takes GET", "GET, HEAD");
    return handle_export(h, c, rq, id);
  }
  return http_send_error(h, c, rq, 404, "no such endpoint", NULL);
}

static enum MHD_Result send_asset(http_server *h, struct MHD_Connection *c, req *rq, const char *path)
{
  const asset *a = assets_find(path);
  if(!a)
    return http_send_error(h, c, rq, 404, "no such page", NULL);
  int html = strncmp(a->mime, "text/html", 9) == 0;
  /* assets are small and constant: copy so one send path (gzip included) serves all */
  char *copy = malloc(a->len ? a->len : 1);
  if(!copy)
    return MHD_NO;
  memcpy(copy, a->data, a->len);
  return send_body(h, c, rq, 200, a->mime, copy, a->len, html);
}

/* POST /login with 'Authorization: Bearer <token>' (the login page's fetch): 204 and an HttpOnly,
 * SameSite=Strict session cookie the API then accepts instead of the header; with
 * 'X-Loopscope-Logout: 1' the cookie is cleared instead. */
static enum MHD_Result handle_login(http_server *h, struct MHD_Connection *c, req *rq)
{
  if(!h->cfg.token)
    return http_send_error(h, c, rq, 404, "this server has no --token: its pages need no login", NULL);
  const char *out = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Loopscope-Logout");
  int logout = out && !strcmp(out, "1");
  if(!logout && !http_token_ok(h, c, 0))
    return http_send_error(h, c, rq, 401, "wrong token", NULL);
  char cookie[160];
  snprintf(cookie, sizeof(cookie), GUARD_COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict%s",
           logout ? "" : h->cookie, logout ? "; Max-Age=0" : "");
  struct MHD_Response *r = MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
  if(!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ok = MHD_queue_response(c, 204, r);
  MHD_destroy_response(r);
  rq->responded = 1;
  metrics_add(&h->m->http_requests, 1);
  log_msg(LOG_INFO, logout ? "a browser logged out" : "a browser logged in");
  return ok;
}

static enum MHD_Result route(http_server *h, struct MHD_Connection *c, req *rq, const char *url,
                             const char *method)
{
  conn_receiving(h, c, 0);
  if(rq->reject == 403)
    return http_send_error(h, c, rq, 403, rq->reject_detail, NULL);
  if(rq->ingest)
    return http_handle_ingest(h, c, rq);
  if(!strncmp(url, "/api/v1/", 8))
    return route_api(h, c, rq, url + 8, method);
  if(!strcmp(url, "/healthz") || !strcmp(url, "/metrics")) {
    if(!is_get(method))
      return http_send_error(h, c, rq, 405, "takes GET", "GET, HEAD");
    jbuf out;
    jbuf_init(&out, 1 << 20);
    if(url[1] == 'h') {
      int bad = atomic_load(&h->corrupt);
      jbuf_printf(&out, "{\"ok\":%s,\"version\":\"%s\",\"schema\":%d%s}", bad ? "false" : "true",
                  LOOPSCOPE_VERSION, store_schema_version(h->s),
                  bad ? ",\"error\":\"the database file is corrupt: see the server's log\"" : "");
      return http_send_json(h, c, rq, bad ? 503 : 200, &out);
    }
    if(!http_token_ok(h, c, 1)) {
      jbuf_free(&out);
      return http_send_error(h, c, rq, 401, UNAUTHORIZED, NULL);
    }
    if(h->cfg.budget)
      metrics_set(&h->m->memory_bytes, membudget_used(h->cfg.budget));
    metrics_set(&h->m->parse_depth, parse_pool_depth(h->pool));
    metrics_render(h->m, writer_queue_depth(h->w), store_db_bytes(h->s), &out);
    if(jbuf_status(&out)) {
      jbuf_free(&out);
      return http_send_error(h, c, rq, 500, "out of memory", NULL);
    }
    size_t len;
    char *p = jbuf_take(&out, &len);
    return send_body(h, c, rq, 200, "text/plain; version=0.0.4; charset=utf-8", p, len, 0);
  }
  if(!strcmp(url, "/login") && !strcmp(method, MHD_HTTP_METHOD_POST))
    return handle_login(h, c, rq);
  if(!is_get(method)) /* /login takes POST too (above): its Allow says so */
    return http_send_error(h, c, rq, strncmp(url, "/api/", 5) ? 405 : 404, "pages take GET",
                      strcmp(url, "/login") ? "GET, HEAD" : "GET, HEAD, POST");
  if(!strcmp(url, "/login"))
    return send_asset(h, c, rq, "login.html");
  if(!strcmp(url, "/"))
    return send_asset(h, c, rq, "index.html");
  if(!strcmp(url, "/endpoints"))
    return send_asset(h, c, rq, "endpoints.html");
  if(!strcmp(url, "/compare"))
    return send_asset(h, c, rq, "compare.html");
  if(!strncmp(url, "/sessions/", 10) && url[10] && !strchr(url + 10, '/')) {
    if(!ingest_id_ok(url + 10)) /* no session can have that id: as the API answers for it */
      return http_send_error(h, c, rq, 404, "no such session", NULL);
    return send_asset(h, c, rq, "session.html");
  }
  if(!strncmp(url, "/static/", 8))
    return send_asset(h, c, rq, url + 8);
  return http_send_error(h, c, rq, 404, "no such page", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
  (void)version;
  http_server *h = cls;
  req *rq = *con_cls;
  if(!rq) {
    rq = calloc(1, sizeof(*rq));
    if(!rq)
      return MHD_NO;
    *con_cls = rq;
    atomic_fetch_add(&h->active, 1);
    jbuf_init(&rq->body, h->cfg.max_body);
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if(!guard_host_ok(h->cfg.allowed_hosts, h->cfg.nallowed_hosts, h->listen_host, host)) {
      guard_host_refusal(host, rq->host_detail, sizeof(rq->host_detail));
      rq->reject = 403;
      rq->reject_detail = rq->host_detail;
      return MHD_YES; /* answered once the body (if any) has been read */
    }
    if(!strcmp(url, "/api/v1/ingest") && !strcmp(method, MHD_HTTP_METHOD_POST)) {
      rq->ingest = 1;
      http_check_ingest_headers(h, c, rq);
      if(rq->answer_now) {
        conn_receiving(h, c, 0);
        return http_handle_ingest(h, c, rq);
      }
    }
    return MHD_YES;
  }
  if(rq->responded) {
    *upload_size = 0;
    return MHD_YES;
  }
  if(rq->submitted)
    return http_answer_job(h, c, rq);
  if(rq->offloaded)
    return http_offload_answer(h, c, rq);
  if(rq->parsing) /* resumed by the pool: the body was refused */
    return http_ingest_error(h, c, rq, rq->parse.status, rq->parse.detail);
  if(*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    rq->seen += n;
    if(rq->ingest && !rq->reject && rq->body.len + n > h->cfg.max_body) {
      rq->reject = 413;
      rq->reject_detail = "body larger than the limit (--max-body)";
      http_unhold(h, &rq->body, &rq->held);
    }
    if(rq->ingest && !rq->reject) {
      jbuf_append(&rq->body, upload_data, n);
      if(http_hold(h, &rq->body, &rq->held)) {
        rq->reject = 503; /* the rest is read and dropped, then answered */
        rq->reject_detail = NO_MEMORY;
        http_unhold(h, &rq->body, &rq->held);
      }
    }
    if(rq->seen > http_read_max(h, rq)) {
      conn_receiving(h, c, 0);
      if(rq->reject == 403)
        return http_send_error(h, c, rq, 403, rq->reject_detail, NULL);
      if(rq->ingest)
        return http_ingest_error(h, c, rq, rq->reject, rq->reject_detail);
      return http_send_error(h, c, rq, 413, "body too large", NULL);
    }
    return MHD_YES;
  }
  return route(h, c, rq, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void)toe;
  http_server *h = cls;
  conn_receiving(h, c, 1); /* a kept-alive connection now waits for its next request */
  req *rq = *con_cls;
  if(!rq)
    return;
  http_unhold(h, &rq->body, &rq->held);
  /* An offloaded query whose connection was found closed when its thread resumed it: the request
   * completes without its answer being asked for, so the answer is still ours. (The thread is
   * done with rq: resuming the connection was its last act.) */
  if(rq->offloaded)
    jbuf_free(&rq->off_out);
  free(rq->results);
  free(rq);
  *con_cls = NULL;
  atomic_fetch_sub(&h->active, 1);
}

/* libmicrohttpd refuses a connection past --max-per-ip (or its own ceiling) itself, saying only
 * this, the same words for both (0.9.75): it is counted from the message. */
#define MHD_REFUSED "Server reached connection limit"

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  http_server *h = cls;
  if(!strncmp(fmt, MHD_REFUSED, sizeof(MHD_REFUSED) - 1))
    metrics_add(&h->m->conn_dropped[CONN_DROP_REFUSED], 1);
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  size_t n = strlen(line);
  while(n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  log_msg(LOG_DEBUG, "http: %s", line);
}

int http_start(const http_config *cfg, store *s, writer *w, metrics *m, http_server **out)
{
  *out = NULL;
  http_server *h = calloc(1, sizeof(*h));
  if(!h)
    return LS_ENOMEM;
  h->cfg = *cfg;
  h->cfg.limits.budget = cfg->budget;
  h->s = s;
  h->w = w;
  h->m = m;
  atomic_init(&h->active, 0);
  atomic_init(&h->suspended, 0);
  atomic_init(&h->corrupt, 0);
  atomic_init(&h->offloaded, 0);
  atomic_init(&h->stopping, 0);
  int n = snprintf(h->csp, sizeof(h->csp),
                   "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors %s",
                   cfg->frame_ancestors);
  if(n < 0 || (size_t)n >= sizeof(h->csp)) {
    free(h);
    return LS_ETOOBIG;
  }
  if(cfg->token) {
    unsigned char rnd[32];
    if(getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
      free(h);
      return LS_EIO;
    }
    for(size_t i = 0; i < sizeof(rnd); i++)
      snprintf(h->cookie + 2 * i, 3, "%02x", rnd[i]);
  }
  if(!cfg->listen || guard_host_part(cfg->listen, h->listen_host, sizeof(h->listen_host)))
    h->listen_host[0] = '\0';
  if(h->cfg.max_connections < 1)
    h->cfg.max_connections = 1000;
  if(h->cfg.request_timeout_s < 1)
    h->cfg.request_timeout_s = 30;
  if(h->cfg.idle_timeout_s < 1)
    h->cfg.idle_timeout_s = 30;
  /* libmicrohttpd's own ceiling leaves room for the connections being dropped to close. */
  unsigned hard = (unsigned)h->cfg.max_connections + (unsigned)h->cfg.max_connections / 4 + 16;
  struct rlimit rl;
  rlim_t need = (rlim_t)hard + 64 + (rlim_t)cfg->threads * 4; /* + database, epoll, pipes */
  if(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    rl.rlim_cur = want;
    if(setrlimit(RLIMIT_NOFILE, &rl) || want < need) {
      getrlimit(RLIMIT_NOFILE, &rl);
      long room = ((long)rl.rlim_cur - 64 - cfg->threads * 4) * 4 / 5 - 16;
      if(room < 16)
        room = 16;
      log_msg(LOG_WARN, "--max-connections %d needs %llu open files, the limit is %llu: serving %ld at most",
              h->cfg.max_connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur, room);
      h->cfg.max_connections = (int)room;
      hard = (unsigned)room + (unsigned)room / 4 + 16;
    }
  }
  parse_limits pl = {.max_body = h->cfg.max_body, .limits = h->cfg.limits, .budget = cfg->budget};
  if(parse_pool_start(&pl, cfg->parse_threads > 0 ? cfg->parse_threads : 2, &h->pool)) {
    free(h);
    return LS_ENOMEM;
  }
  if(http_conns_start(&h->conns, h->cfg.max_connections, h->cfg.request_timeout_s, m)) {
    parse_pool_stop(h->pool);
    free(h);
    return LS_ENOMEM;
  }
  /* A heartbeat well within the idle timeout, or libmicrohttpd would close a quiet stream. */
  int beat = cfg->live_heartbeat_ms > 0 ? cfg->live_heartbeat_ms : 15000;
  if(beat > h->cfg.idle_timeout_s * 500)
    beat = h->cfg.idle_timeout_s * 500;
  if(live_start(s, m, cfg->max_streams, beat, &h->live)) {
    http_conns_free(&h->conns);
    parse_pool_stop(h->pool);
    free(h);
    return LS_ENOMEM;
  }
  /* ERROR_LOG: without it libmicrohttpd says nothing, and on_mhd_log counts its refusals */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  /* poll(), not epoll: with epoll and internal threads, MHD_quiesce_daemon (http_stop) races a
   * worker's own removal of the listen socket from its epoll set, and whichever loses gets ENOENT
   * and MHD_PANIC aborts the process (libmicrohttpd 0.9.75, seen in a CI run: SIGTERM while 40
   * sessions were being posted, "Failed to remove listen FD from epoll set", exit by SIGABRT).
   * poll() rebuilds its set on every pass and a quiesced worker leaves the listen socket out. Each
   * worker polls only its own connections (--threads of them share --max-connections). */
  flags |= MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES ? MHD_USE_POLL : MHD_USE_AUTO;
  if(cfg->addr->sa_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, /* first, or MHD says so */
                          MHD_OPTION_SOCK_ADDR, cfg->addr,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->cfg.idle_timeout_s,
                          MHD_OPTION_CONNECTION_LIMIT, hard,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(cfg->max_per_ip > 0 ? cfg->max_per_ip : 0),
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                          MHD_OPTION_END);
  if(!h->d) {
    live_free(h->live);
    http_conns_free(&h->conns);
    parse_pool_stop(h->pool);
    free(h);
    return LS_EIO;
  }
  writer_set_listener(w, live_notify, h->live);
  *out = h;
  return 0;
}

int http_suspend(http_server *h, struct MHD_Connection *c)
{
  atomic_fetch_add(&h->suspended, 1);
  if(atomic_load(&h->stopping)) {
    atomic_fetch_sub(&h->suspended, 1);
    return -1;
  }
  MHD_suspend_connection(c);
  return 0;
}

void http_resume(http_server *h, struct MHD_Connection *c)
{
  MHD_resume_connection(c);
  atomic_fetch_sub(&h->suspended, 1);
}

unsigned http_port(http_server *h)
{
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  return i ? i->port : 0;
}

void http_stop(http_server *h, int wait_ms)
{
  if(!h)
    return;
  MHD_socket ls = MHD_quiesce_daemon(h->d);
  if(ls != MHD_INVALID_SOCKET)
    close(ls);
  /* From here no connection is suspended any more (http_suspend): connections accepted before the
   * quiesce may still send requests, and one suspended after the wait below would be under
   * MHD_stop_daemon (a libmicrohttpd panic, seen when SIGTERM came while clients posted). */
  atomic_store(&h->stopping, 1);
  /* Event streams end first: they would hold their connections (and `active`) to the end. */
  writer_set_listener(h->w, NULL, NULL);
  live_stop(h->live, wait_ms < 2000 ? wait_ms : 2000);
  /* Every connection handed to the parse pool or the writer is resumed by them first: the pool
   * parses everything queued and the writer always answers (a locked database within its busy
   * timeout), and stopping libmicrohttpd under a suspended connection would leave them resuming
   * a freed one. So this wait has no limit. */
  struct timespec tick = {0, 10 * 1000 * 1000};
  for(int waited = 0; atomic_load(&h->suspended) > 0; waited += 10) {
    if(waited && waited % 5000 == 0)
      log_msg(LOG_INFO, "stopping: %d requests still wait for the parse pool or the writer", atomic_load(&h->suspended));
    nanosleep(&tick, NULL);
  }
  /* Then requests in flight are answered, within wait_ms. */
  for(int waited = 0; atomic_load(&h->active) > 0 && waited < wait_ms; waited += 10)
    nanosleep(&tick, NULL);
  http_conns_stop(&h->conns);
  MHD_stop_daemon(h->d); /* closes what is still open: http_conns_closed for each */
  parse_pool_stop(h->pool); /* idle by now: every job it had was resumed above */
  live_free(h->live); /* after the daemon: it frees the streams still open */
  http_conns_free(&h->conns);
  free(h);
}
