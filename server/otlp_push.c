/* otlp_push.c — the OTLP/HTTP push (otlp_push.h): its configuration from the OpenTelemetry
 * exporter variables, and its thread. The thread takes each due session into the outbox
 * (store_outbox.c) as the request bodies otlp_trace.c writes, gzip'd, in one transaction; then
 * sends the oldest body with libcurl and, in one transaction again, removes it once the backend
 * answered for good. It shares no lock with ingest: the only thing it waits for is SQLite's
 * write lock, for the short transactions of taking a session and marking a body, never across
 * network I/O.
 *
 * Delivery is at least once: a body leaves the outbox after its 2xx, so a crash between the
 * answer and that commit sends it again after the restart. The bytes are the same and every
 * id in them is derived from the session, so the backend receives the very same spans again. */
#include "otlp_push.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gz.h"
#include "jbuf.h"
#include "log.h"
#include "otlp_trace.h"
#include "session_rows.h"
#include "thread_name.h"

#define POLL_MS 500                        /* how often due sessions are looked for */
#define FIRST_BACKOFF_MS 1000              /* the first wait after a failure without Retry-After */
#define MAX_RETRY_AFTER_MS (3600 * 1000)   /* a Retry-After longer than an hour counts as an hour */
#define ENDED_SETTLE_S 2                   /* an ended session is taken this long after its latest batch */
#define SESSION_BYTES_MAX ((size_t)512 << 20) /* the compressed bodies of one session, together */
#define BODY_MAX ((size_t)256 << 20)       /* one body's buffer, even for a single huge span */
#define ANSWER_MAX ((size_t)64 << 10)      /* what is kept of an answer's body */

/* ---------------------------------------------------------------- configuration */

void otlp_push_defaults(otlp_push_config *c)
{
  memset(c, 0, sizeof(*c));
  c->max_request_bytes = (size_t)4 << 20; /* a fifth of Jaeger's 20 MiB after decompression */
  c->quiet_s = 300;
  c->timeout_ms = 10000;
  c->max_backoff_ms = 30000;
  c->gzip = 1;
}

/* The signal-specific variable, else the generic one; *specific says which. */
static const char *env_pick(char *(*get)(const char *), const char *name, int *specific)
{
  char traces[64], generic[64];
  snprintf(traces, sizeof(traces), "OTEL_EXPORTER_OTLP_TRACES_%s", name);
  snprintf(generic, sizeof(generic), "OTEL_EXPORTER_OTLP_%s", name);
  const char *v = get(traces);
  *specific = v && *v;
  if(*specific)
    return v;
  v = get(generic);
  return v && *v ? v : NULL;
}

/* Room in c->buf for n more bytes (and a NUL). */
static char *buf_room(otlp_push_config *c, size_t n)
{
  if(n + 1 > sizeof(c->buf) - c->used)
    return NULL;
  return c->buf + c->used;
}

static int hexval(char ch)
{
  if(ch >= '0' && ch <= '9')
    return ch - '0';
  if(ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if(ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) trimmed of spaces into out (at least n + 1 bytes); -1 on a bad escape
 * or a control character. */
static int decode(const char *s, size_t n, char *out)
{
  while(n && (*s == ' ' || *s == '\t'))
    s++, n--;
  while(n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  size_t k = 0;
  for(size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if(ch == '%') {
      int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
      int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
      if(hi < 0 || lo < 0)
        return -1;
      ch = (unsigned char)(hi * 16 + lo);
      i += 2;
    }
    if(ch < 0x20 || ch == 0x7f)
      return -1;
    out[k++] = (char)ch;
  }
  out[k] = '\0';
  return (int)k;
}

/* A header name: an HTTP token. */
static int token_ok(const char *s)
{
  if(!*s)
    return 0;
  for(; *s; s++)
    if(!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
         strchr("!#$%&'*+-.^_`|~", *s)))
      return 0;
  return 1;
}

/* "k=v,k2=v2" (the W3C baggage form the OpenTelemetry variables use) → "k: v" lines in c->buf. */
static int parse_headers(otlp_push_config *c, const char *v, char *err, size_t errlen)
{
  while(*v) {
    size_t n = strcspn(v, ",");
    const char *eq = memchr(v, '=', n);
    if(n == 0 || strspn(v, " \t") == n) {
      v += n + (v[n] == ',');
      continue;
    }
    char *out = buf_room(c, n + 2);
    if(!eq || !out || c->nheaders == OTLP_PUSH_MAX_HEADERS) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_HEADERS: %s",
               !eq ? "expected name=value pairs separated by commas" : "too many or too long headers");
      return -1;
    }
    int kn = decode(v, (size_t)(eq - v), out);
    if(kn <= 0 || !token_ok(out)) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_HEADERS: a header name must be an HTTP token");
      return -1;
    }
    out[kn] = ':';
    out[kn + 1] = ' ';
    if(decode(eq + 1, n - (size_t)(eq - v) - 1, out + kn + 2) < 0) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_HEADERS: a value holds a bad %%-escape or a control character");
      return -1;
    }
    c->headers[c->nheaders++] = out;
    c->used += strlen(out) + 1;
    v += n + (v[n] == ',');
  }
  return 0;
}

static int url_ok(const char *u)
{
  return !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
}

int otlp_push_from_env(otlp_push_config *c, char *(*get)(const char *), char *err, size_t errlen)
{
  int specific = 0;
  const char *v = env_pick(get, "ENDPOINT", &specific);
  if(v) {
    if(!url_ok(v)) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_%sENDPOINT: expected an http:// or https:// URL", specific ? "TRACES_" : "");
      return -1;
    }
    /* the generic variable is the base of every signal's URL: traces are at <base>/v1/traces */
    size_t n = strlen(v);
    const char *tail = specific ? "" : v[n - 1] == '/' ? "v1/traces" : "/v1/traces";
    char *out = buf_room(c, n + strlen(tail));
    if(!out) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_ENDPOINT: too long");
      return -1;
    }
    snprintf(out, sizeof(c->buf) - c->used, "%s%s", v, tail);
    c->endpoint = out;
    c->used += strlen(out) + 1;
  }
  v = env_pick(get, "HEADERS", &specific);
  if(v && parse_headers(c, v, err, errlen))
    return -1;
  v = env_pick(get, "TIMEOUT", &specific);
  if(v) {
    char *end = NULL;
    long long ms = strtoll(v, &end, 10);
    if(!end || *end || ms < 1 || ms > 3600000) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_TIMEOUT: expected milliseconds in [1, 3600000]");
      return -1;
    }
    c->timeout_ms = ms;
  }
  v = env_pick(get, "COMPRESSION", &specific);
  if(v) {
    if(strcmp(v, "gzip") && strcmp(v, "none")) {
      snprintf(err, errlen, "OTEL_EXPORTER_OTLP_COMPRESSION: expected gzip or none");
      return -1;
    }
    c->gzip = !strcmp(v, "gzip");
  }
  v = env_pick(get, "PROTOCOL", &specific);
  if(v && strcmp(v, "http/json") && strcmp(v, "http/protobuf")) {
    snprintf(err, errlen, "OTEL_EXPORTER_OTLP_PROTOCOL=%.32s: loopscope-server sends OTLP/HTTP (JSON); "
                          "give the backend's OTLP/HTTP endpoint (port 4318 by convention)", v);
    return -1;
  }
  return 0;
}

int otlp_push_retry_after(const char *value, int64_t now_s, int64_t *wait_ms)
{
  while(*value == ' ')
    value++;
  int64_t ms;
  if(*value >= '0' && *value <= '9') {
    char *end = NULL;
    long long s = strtoll(value, &end, 10);
    while(end && *end == ' ')
      end++;
    if(!end || *end)
      return -1;
    ms = s > MAX_RETRY_AFTER_MS / 1000 ? MAX_RETRY_AFTER_MS : s * 1000;
  }
  else {
    time_t at = curl_getdate(value, NULL);
    if(at == (time_t)-1)
      return -1;
    ms = ((int64_t)at - now_s) * 1000;
  }
  *wait_ms = ms < 0 ? 0 : ms > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : ms;
  return 0;
}

int otlp_push_retryable(long status)
{
  return status == 429 || status == 502 || status == 503 || status == 504;
}

/* ---------------------------------------------------------------- the thread */

struct otlp_push {
  const otlp_push_config *c;
  metrics *m;
  store_outbox *ob;
  CURL *curl;
  struct curl_slist *hdrs;
  pthread_t th;
  pthread_mutex_t mu; /* with cv: the thread's sleeps, cut short by otlp_push_stop */
  pthread_cond_t cv;
  atomic_int stopping;
  int64_t backoff_ms;  /* the next wait when the backend says nothing of when */
  int64_t retry_at_ms; /* monotonic: nothing is sent before */
  int failing;         /* in a run of retryable failures (the first one is logged) */
  unsigned seed;       /* for the jitter */
  char retry_after[64];
  jbuf answer;         /* the body of the last answer (at most ANSWER_MAX) */
};

static int64_t mono_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t unix_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec;
}

static void sleep_until(otlp_push *p, int64_t at_ms)
{
  int64_t wait = at_ms - mono_ms();
  if(wait <= 0)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += wait / 1000;
  ts.tv_nsec += (wait % 1000) * 1000000;
  if(ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&p->mu);
  if(!atomic_load(&p->stopping))
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
  pthread_mutex_unlock(&p->mu);
}

static void update_depth(otlp_push *p)
{
  int64_t parts = 0, sessions = 0;
  if(store_outbox_depth(p->ob, &parts, &sessions) == 0) {
    metrics_set(&p->m->otlp_outbox_requests, parts);
    metrics_set(&p->m->otlp_outbox_sessions, sessions);
  }
}

/* The bodies of one session as the builder hands them over, compressed. */
typedef struct parts {
  otlp_push *p;
  store_outbox_part *v;
  size_t n, cap, bytes;
} parts;

static void parts_free(parts *pp)
{
  for(size_t i = 0; i < pp->n; i++)
    free(pp->v[i].body);
  free(pp->v);
}

static int collect_part(void *ctx, const char *body, size_t len, int64_t spans)
{
  parts *pp = ctx;
  if(pp->n == pp->cap) {
    size_t cap = pp->cap ? pp->cap * 2 : 8;
    store_outbox_part *v = realloc(pp->v, cap * sizeof(*v));
    if(!v)
      return LS_ENOMEM;
    pp->v = v;
    pp->cap = cap;
  }
  size_t n = len;
  char *copy = pp->p->c->gzip ? gz_compress(body, len, 6, &n) : malloc(len ? len : 1);
  if(!copy)
    return LS_ENOMEM;
  if(!pp->p->c->gzip)
    memcpy(copy, body, len);
  if(n > SESSION_BYTES_MAX - pp->bytes) {
    free(copy);
    return LS_ETOOBIG;
  }
  pp->bytes += n;
  pp->v[pp->n] = (store_outbox_part){0, (int64_t)pp->n, spans, copy, n};
  pp->n++;
  return 0;
}

/* Takes the oldest due session into the outbox. 0 when one was taken (or vanished meanwhile),
 * LS_ENOTFOUND when none is due, or an error (the same session is tried again later). */
static int take_session(otlp_push *p)
{
  int64_t now = unix_s(), sid = 0;
  char id[160];
  int rc = store_outbox_due(p->ob, now - ENDED_SETTLE_S, now - p->c->quiet_s, &sid, id, sizeof(id));
  if(rc)
    return rc;
  session_rows w;
  rc = session_rows_load(store_outbox_read_begin(p->ob), id, &w);
  store_outbox_read_end(p->ob);
  if(rc == LS_ENOTFOUND)
    return 0; /* deleted since */
  if(rc)
    return rc;
  parts pp = {p, NULL, 0, 0, 0};
  otlp_trace_options o = {p->c->public_url, p->c->max_request_bytes, BODY_MAX};
  rc = otlp_trace_build(&w, &o, collect_part, &pp);
  int64_t spans = otlp_trace_spans(&w);
  session_rows_free(&w);
  if(rc == LS_ETOOBIG || rc == LS_ENOMEM) {
    /* taken as failed: trying the same again would stop every later session behind it */
    log_msg(LOG_ERROR, "otlp: session %s (%lld spans) cannot be sent: %s; it is skipped", id,
            (long long)spans, rc == LS_ETOOBIG ? "its trace is too large" : "out of memory");
    metrics_add(&p->m->otlp_spans[OTLP_FAILED], spans);
    parts_free(&pp);
    pp = (parts){p, NULL, 0, 0, 0};
    rc = 0;
  }
  if(!rc)
    rc = store_outbox_take(p->ob, sid, now, pp.v, pp.n, spans);
  if(!rc) {
    metrics_add(&p->m->otlp_sessions, 1);
    log_msg(LOG_DEBUG, "otlp: session %s taken: %lld spans in %zu requests (%zu bytes)", id,
            (long long)spans, pp.n, pp.bytes);
  }
  parts_free(&pp);
  return rc;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
  otlp_push *p = arg;
  size_t n = size * nmemb;
  if(p->answer.len + n <= ANSWER_MAX)
    jbuf_append(&p->answer, ptr, n);
  return n; /* the rest is read and dropped */
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
  otlp_push *p = arg;
  size_t n = size * nmemb;
  if(n > 12 && !strncasecmp(ptr, "retry-after:", 12)) {
    size_t k = n - 12;
    const char *v = ptr + 12;
    while(k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
      k--;
    if(k >= sizeof(p->retry_after))
      k = sizeof(p->retry_after) - 1;
    memcpy(p->retry_after, v, k);
    p->retry_after[k] = '\0';
  }
  return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
  (void)a, (void)b, (void)c, (void)d;
  return atomic_load(&((otlp_push *)arg)->stopping) ? 1 : 0; /* non-zero aborts the transfer */
}

/* Spans a 2xx answer says it rejected (OTLP partial success), 0 when none. */
static int64_t rejected_spans(otlp_push *p)
{
  if(!p->answer.len || jbuf_status(&p->answer))
    return 0;
  cJSON *j = cJSON_ParseWithLength(p->answer.data, p->answer.len);
  const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "partialSuccess");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(ps, "rejectedSpans");
  int64_t n = cJSON_IsNumber(r) ? (int64_t)r->valuedouble : cJSON_IsString(r) ? strtoll(r->valuestring, NULL, 10) : 0;
  if(n > 0) {
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ps, "errorMessage"));
    log_msg(LOG_WARN, "otlp: the backend rejected %lld spans: %.300s", (long long)n, msg ? msg : "");
  }
  cJSON_Delete(j);
  return n > 0 ? n : 0;
}

/* Removes an answered body from the outbox. The transaction is short, but the writer may hold
 * the lock for a while under heavy ingest: a few tries before giving up (the body is then sent
 * again after a while: at least once). */
static void mark_done(otlp_push *p, const store_outbox_part *part, int sent)
{
  int rc = 0;
  for(int tries = 0; tries < 10 && !atomic_load(&p->stopping); tries++) {
    rc = store_outbox_done(p->ob, part->sid, part->part, sent);
    if(rc != LS_EBUSY)
      break;
  }
  if(rc)
    log_msg(LOG_WARN, "otlp: could not mark request %lld of session %lld as answered (error %d): it will be "
                      "sent again", (long long)part->part, (long long)part->sid, rc);
}

enum { PUSH_IDLE, PUSH_DONE, PUSH_WAIT };

/* Sends the oldest body in the outbox and acts on the answer. */
static int send_next(otlp_push *p)
{
  store_outbox_part part;
  int rc = store_outbox_next(p->ob, &part);
  if(rc == LS_ENOTFOUND)
    return PUSH_IDLE;
  if(rc) {
    log_msg(LOG_WARN, "otlp: reading the outbox failed (error %d)", rc);
    p->retry_at_ms = mono_ms() + FIRST_BACKOFF_MS;
    return PUSH_WAIT;
  }
  jbuf_reset(&p->answer);
  p->answer.failed = 0;
  p->retry_after[0] = '\0';
  curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, part.body);
  curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)part.len);
  CURLcode cc = curl_easy_perform(p->curl);
  free(part.body);
  long status = 0;
  if(cc == CURLE_OK)
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
  if(atomic_load(&p->stopping))
    return PUSH_WAIT; /* abandoned: it stays in the outbox for the next start */
  if(cc == CURLE_OK && status >= 200 && status < 300) {
    int64_t rejected = rejected_spans(p);
    if(rejected > part.spans)
      rejected = part.spans;
    mark_done(p, &part, 1);
    metrics_add(&p->m->otlp_requests[OTLP_SENT], 1);
    metrics_add(&p->m->otlp_spans[OTLP_SENT], part.spans - rejected);
    metrics_add(&p->m->otlp_spans[OTLP_FAILED], rejected);
    if(p->failing)
      log_msg(LOG_INFO, "otlp: %s answers again", p->c->endpoint);
    p->failing = 0;
    p->backoff_ms = FIRST_BACKOFF_MS;
    return PUSH_DONE;
  }
  if(cc != CURLE_OK || otlp_push_retryable(status)) {
    int64_t wait = 0;
    if(!p->retry_after[0] || otlp_push_retry_after(p->retry_after, unix_s(), &wait)) {
      /* exponential, with a fifth either way of jitter so that many servers do not retry at once */
      int64_t b = p->backoff_ms < p->c->max_backoff_ms ? p->backoff_ms : p->c->max_backoff_ms;
      wait = b * 4 / 5 + (int64_t)(rand_r(&p->seed) % (unsigned)(b * 2 / 5 + 1));
      p->backoff_ms = b * 2;
    }
    p->retry_at_ms = mono_ms() + wait;
    metrics_add(&p->m->otlp_requests[OTLP_RETRIED], 1);
    metrics_add(&p->m->otlp_spans[OTLP_RETRIED], part.spans);
    char why[128];
    if(cc != CURLE_OK)
      snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
    else
      snprintf(why, sizeof(why), "HTTP %ld", status);
    log_msg(p->failing ? LOG_DEBUG : LOG_WARN, "otlp: %s: %s; trying again in %lld ms (the outbox keeps "
            "every session meanwhile)", p->c->endpoint, why, (long long)wait);
    p->failing = 1;
    return PUSH_WAIT;
  }
  /* any other answer will not change by sending the same again (OTLP/HTTP: not retryable) */
  mark_done(p, &part, 0);
  metrics_add(&p->m->otlp_requests[OTLP_FAILED], 1);
  metrics_add(&p->m->otlp_spans[OTLP_FAILED], part.spans);
  log_msg(LOG_WARN, "otlp: %s refused request %lld of session %lld (%lld spans) with HTTP %ld: %.300s; "
          "it is not sent again%s", p->c->endpoint, (long long)part.part, (long long)part.sid,
          (long long)part.spans, status, p->answer.len && !jbuf_status(&p->answer) ? p->answer.data : "",
          status == 413 ? " (a smaller --otlp-max-request-bytes would split it further)" : "");
  return PUSH_DONE;
}

static void *push_main(void *arg)
{
  thread_name("ls-otlp");
  otlp_push *p = arg;
  int64_t next_scan = 0;
  update_depth(p);
  while(!atomic_load(&p->stopping)) {
    int64_t now = mono_ms();
    if(now >= next_scan) {
      int rc = 0;
      for(int k = 0; k < 64 && !rc && !atomic_load(&p->stopping); k++)
        rc = take_session(p);
      if(rc && rc != LS_ENOTFOUND)
        log_msg(LOG_WARN, "otlp: taking a session into the outbox failed (error %d); trying again", rc);
      update_depth(p);
      next_scan = mono_ms() + POLL_MS;
    }
    int r = PUSH_IDLE;
    if(mono_ms() >= p->retry_at_ms)
      r = send_next(p);
    if(r == PUSH_DONE) {
      update_depth(p);
      continue;
    }
    sleep_until(p, r == PUSH_WAIT && p->retry_at_ms < next_scan ? p->retry_at_ms : next_scan);
  }
  return NULL;
}

static void push_free(otlp_push *p)
{
  if(p->curl)
    curl_easy_cleanup(p->curl);
  curl_slist_free_all(p->hdrs);
  store_outbox_close(p->ob);
  jbuf_free(&p->answer);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int otlp_push_start(const otlp_push_config *c, store *s, metrics *m, otlp_push **out)
{
  *out = NULL;
  if(!c->endpoint)
    return LS_EINVAL;
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return LS_EIO;
  otlp_push *p = calloc(1, sizeof(*p));
  if(!p) {
    curl_global_cleanup();
    return LS_ENOMEM;
  }
  p->c = c;
  p->m = m;
  p->backoff_ms = FIRST_BACKOFF_MS;
  p->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)p;
  atomic_init(&p->stopping, 0);
  jbuf_init(&p->answer, ANSWER_MAX);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  char err[256] = "";
  int rc = store_outbox_open(s, &p->ob, err, sizeof(err));
  if(rc)
    log_msg(LOG_ERROR, "otlp: cannot open the outbox: %s", err);
  p->curl = rc ? NULL : curl_easy_init();
  if(!rc && !p->curl)
    rc = LS_ENOMEM;
  const char *fixed[] = {"Content-Type: application/json", c->gzip ? "Content-Encoding: gzip" : NULL,
                         "Expect:"}; /* no 100-continue round trip before a large body */
  for(size_t i = 0; !rc && i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    struct curl_slist *l = fixed[i] ? curl_slist_append(p->hdrs, fixed[i]) : p->hdrs;
    rc = l ? 0 : LS_ENOMEM;
    p->hdrs = l ? l : p->hdrs;
  }
  for(int i = 0; !rc && i < c->nheaders; i++) {
    struct curl_slist *l = curl_slist_append(p->hdrs, c->headers[i]);
    rc = l ? 0 : LS_ENOMEM;
    p->hdrs = l ? l : p->hdrs;
  }
  if(rc) {
    push_free(p);
    curl_global_cleanup();
    return rc;
  }
  CURL *h = p->curl;
  curl_easy_setopt(h, CURLOPT_URL, c->endpoint);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, p->hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "loopscope-server/" LOOPSCOPE_VERSION);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->timeout_ms < 5000 ? c->timeout_ms : 5000));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  if(pthread_create(&p->th, NULL, push_main, p) != 0) {
    push_free(p);
    curl_global_cleanup();
    return LS_ENOMEM;
  }
  log_msg(LOG_INFO, "otlp: forwarding sessions to %s (OTLP/HTTP JSON%s, requests up to %zu bytes, "
          "sessions without end after %llds quiet)", c->endpoint, c->gzip ? ", gzip" : "",
          c->max_request_bytes, (long long)c->quiet_s);
  *out = p;
  return 0;
}

void otlp_push_stop(otlp_push *p)
{
  if(!p)
    return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stopping, 1);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
  push_free(p);
  curl_global_cleanup();
}
