/* main.c — loopscope-server: command line, configuration, signals and the start/stop order
 * (store → writer → http; on SIGINT/SIGTERM: http stops accepting and finishes, the writer
 * drains its queue, the store checkpoints). Everything else lives in the modules it starts. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "otlp_push.h"
#include "query.h"
#include "store.h"
#include "writer.h"

/* IPv6 loopback ([::1]) cannot be named: CSP host-source has no syntax for IPv6 literals, and
 * Chromium reports such an entry as an error. A toolbar served from [::1] needs --embed-origin. */
#define DEFAULT_ANCESTORS "'self' http://127.0.0.1:* http://localhost:*"

static const char usage[] =
  "usage: loopscope-server [options]\n"
  "  --listen HOST:PORT     address to serve on (default 127.0.0.1:7878; port 0 = any free port)\n"
  "  --db PATH              SQLite database file (default ./loopscope.db)\n"
  "  --token TOKEN          require 'Authorization: Bearer TOKEN' on the API (needed beyond loopback)\n"
  "  --max-body BYTES       largest ingest body, also after gzip decoding (default 16M; K/M suffixes)\n"
  "  --max-memory SIZE      memory for ingest: bodies being read and decoded, batches being parsed and\n"
  "                         batches queued for the writer, together (default 512M; K/M/G suffixes);\n"
  "                         past it ingest answers 503 + Retry-After. At least 2 x --max-body +\n"
  "                         --max-batch-memory\n"
  "  --max-batch-memory SIZE  memory one parsed batch may take (default 128M; a JSON value takes 64\n"
  "                         bytes or more once parsed); past it the batch is answered 413\n"
  "  --embed-origin ORIGIN  allow ORIGIN to frame the pages (repeatable; default:\n"
  "                         'self' http://127.0.0.1:* http://localhost:*)\n"
  "  --threads N            HTTP worker threads, each with its own read connection (default 4)\n"
  "  --queue N              batches that may wait for the writer before 503 (default 64)\n"
  "  --log-level LEVEL      error, warn, info (default) or debug\n"
  "  --allowed-host NAME    also answer requests whose Host header names NAME (repeatable; '*' = any).\n"
  "                         Always allowed: localhost, IP addresses, the --listen host (DNS rebinding guard)\n"
  "  --max-connections N    open connections at most (default 1000); when full, the slowest request\n"
  "                         still being received is dropped for the new one\n"
  "  --max-per-ip N         open connections from one client address (default 128; 0 = no limit)\n"
  "  --request-timeout S    seconds for a request's headers and body to arrive, counted from the\n"
  "                         connection's opening or the previous answer (default 30)\n"
  "  --idle-timeout S       seconds a connection may send nothing (default 30)\n"
  "  --max-streams N        live event streams (Server-Sent Events) open at once (default 64;\n"
  "                         0 = none); past it they are answered 503\n"
  "  --live-heartbeat S     seconds between heartbeat comments on an idle event stream (default 15)\n"
  "  --max-sessions N       keep the newest N sessions, delete older ones (default: no limit)\n"
  "  --max-age DURATION     delete sessions whose latest batch is older, e.g. 3600, 90m, 12h, 7d\n"
  "                         (s, m, h, d suffixes; default: no limit)\n"
  "  --max-db-size SIZE     delete the oldest sessions while the data exceeds SIZE, e.g. 512M, 2G\n"
  "                         (K, M, G suffixes; never the newest session; default: no limit)\n"
  "  --public-url URL       the base URL users reach these pages at, e.g. http://loopscope.example:7878\n"
  "                         (default: http://<--listen> unless it listens on any address or port 0);\n"
  "                         OTLP traces link to the session's timeline with it\n"
  "  --otlp-endpoint URL    forward every session to an OpenTelemetry backend's OTLP/HTTP traces\n"
  "                         endpoint, e.g. http://127.0.0.1:4318/v1/traces (also read from\n"
  "                         OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces;\n"
  "                         headers from OTEL_EXPORTER_OTLP_HEADERS); see docs/otlp.md\n"
  "  --otlp-max-request-bytes SIZE  largest OTLP request before compression (default 4M)\n"
  "  --otlp-quiet DURATION  forward a session that never sent `end` after this long without a batch\n"
  "                         (default 5m; s, m, h suffixes)\n"
  "  --otlp-timeout-ms MS   one OTLP request, connecting included (default 10000)\n"
  "  --otlp-max-backoff-ms MS  longest wait between retries when the backend gives no Retry-After\n"
  "                         (default 30000)\n"
  "  --otlp-compression gzip|none  (default gzip)\n"
  "  --help                 this text\n"
  "  --version              the version\n";

typedef struct options {
  const char *listen, *db, *token, *log_level;
  size_t max_body, max_memory, max_batch_memory;
  int threads, queue;
  char ancestors[2048];
  int custom_ancestors;
  /* the HTTP layer's connections and hosts (http_option) */
  const char *allowed_hosts[HTTP_MAX_ALLOWED_HOSTS];
  int nallowed_hosts;
  int max_connections, max_per_ip, request_timeout, idle_timeout;
  int max_streams, live_heartbeat;
  store_limits limits; /* retention (retention_option) */
  otlp_push_config otlp; /* the OTLP push (otlp_option) */
  char public_url[300];
} options;

/* The retention options: 1 taken (and *i moved past its value), 0 not one of them, -1 a bad
 * value (said on stderr). A number with an optional unit suffix, at least 1. */
static int retention_option(int argc, char **argv, int *i, options *o)
{
  static const struct { const char *name, *units, *example; int64_t mul[4]; } opts[] = {
    {"--max-sessions", "", "1000", {1}},
    {"--max-age", "smhd", "3600, 90m, 12h or 7d", {1, 60, 3600, 86400}},
    {"--max-db-size", "KMG", "1048576, 512M or 2G", {1024, 1 << 20, 1 << 30}},
  };
  size_t k = 0;
  while(k < sizeof(opts) / sizeof(opts[0]) && strcmp(argv[*i], opts[k].name))
    k++;
  if(k == sizeof(opts) / sizeof(opts[0]))
    return 0;
  if(*i + 1 >= argc) {
    fprintf(stderr, "loopscope-server: %s needs a value\n", argv[*i]);
    return -1;
  }
  const char *v = argv[++*i];
  char *end = NULL;
  long long n = (v[0] >= '0' && v[0] <= '9') ? strtoll(v, &end, 10) : 0;
  int64_t mul = 1;
  const char *u = end && *end ? strchr(opts[k].units, *end) : NULL;
  if(u) {
    mul = opts[k].mul[u - opts[k].units];
    end++;
  }
  if(!end || *end || n < 1 || n > INT64_MAX / 2 / mul) {
    fprintf(stderr, "loopscope-server: %s takes a positive number such as %s\n", opts[k].name, opts[k].example);
    return -1;
  }
  int64_t *field[] = {&o->limits.max_sessions, &o->limits.max_age_s, &o->limits.max_db_bytes};
  *field[k] = (int64_t)n * mul;
  return 1;
}

/* The HTTP layer's connection and host options: 1 taken (and *i moved past its value), 0 not one
 * of them, -1 a bad value (said on stderr). */
static int http_option(int argc, char **argv, int *i, options *o)
{
  static const struct { const char *name; int min, max; size_t off; } ints[] = {
    {"--max-connections", 1, 100000, offsetof(options, max_connections)},
    {"--max-per-ip", 0, 100000, offsetof(options, max_per_ip)},
    {"--request-timeout", 1, 86400, offsetof(options, request_timeout)},
    {"--idle-timeout", 1, 86400, offsetof(options, idle_timeout)},
    {"--max-streams", 0, 10000, offsetof(options, max_streams)},
    {"--live-heartbeat", 1, 3600, offsetof(options, live_heartbeat)},
  };
  const char *a = argv[*i];
  int is_host = !strcmp(a, "--allowed-host");
  size_t k = 0;
  while(!is_host && k < sizeof(ints) / sizeof(ints[0]) && strcmp(a, ints[k].name))
    k++;
  if(!is_host && k == sizeof(ints) / sizeof(ints[0]))
    return 0;
  if(*i + 1 >= argc) {
    fprintf(stderr, "loopscope-server: %s needs a value\n", a);
    return -1;
  }
  const char *v = argv[++*i];
  if(is_host) {
    if(!http_host_name_ok(v)) {
      fprintf(stderr, "loopscope-server: --allowed-host takes a host name or address without port, or '*'\n");
      return -1;
    }
    if(o->nallowed_hosts == HTTP_MAX_ALLOWED_HOSTS) {
      fprintf(stderr, "loopscope-server: at most %d --allowed-host values\n", HTTP_MAX_ALLOWED_HOSTS);
      return -1;
    }
    o->allowed_hosts[o->nallowed_hosts++] = v;
    return 1;
  }
  int64_t n;
  if(query_parse_i64(v, ints[k].min, ints[k].max, &n)) {
    fprintf(stderr, "loopscope-server: %s takes an integer in [%d, %d]\n", a, ints[k].min, ints[k].max);
    return -1;
  }
  *(int *)((char *)o + ints[k].off) = (int)n;
  return 1;
}

static int parse_size(const char *s, size_t *out);

/* The OTLP push's options (over what the environment said) and --public-url: 1 taken (and *i
 * moved past its value), 0 not one of them, -1 a bad value (said on stderr). */
static int otlp_option(int argc, char **argv, int *i, options *o)
{
  static const char *const names[] = {"--otlp-endpoint", "--otlp-max-request-bytes", "--otlp-quiet",
                                      "--otlp-timeout-ms", "--otlp-max-backoff-ms", "--otlp-compression",
                                      "--public-url"};
  const char *a = argv[*i];
  size_t k = 0;
  while(k < sizeof(names) / sizeof(names[0]) && strcmp(a, names[k]))
    k++;
  if(k == sizeof(names) / sizeof(names[0]))
    return 0;
  if(*i + 1 >= argc) {
    fprintf(stderr, "loopscope-server: %s needs a value\n", a);
    return -1;
  }
  const char *v = argv[++*i];
  otlp_push_config *c = &o->otlp;
  int64_t n = 0;
  const char *bad = NULL;
  switch(k) {
  case 0:
  case 6:
    if(strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
      bad = "an http:// or https:// URL";
    else if(k == 0)
      c->endpoint = v;
    else if(strlen(v) >= sizeof(o->public_url))
      bad = "a URL shorter than 300 bytes";
    else
      snprintf(o->public_url, sizeof(o->public_url), "%s", v);
    break;
  case 1:
    if(parse_size(v, &c->max_request_bytes) || c->max_request_bytes < 4096)
      bad = "a size of at least 4096 bytes such as 65536, 512K or 4M";
    break;
  case 2: {
    char *end = NULL;
    long long q = (v[0] >= '0' && v[0] <= '9') ? strtoll(v, &end, 10) : -1;
    int64_t mul = end && *end == 'm' ? 60 : end && *end == 'h' ? 3600 : 1;
    if(end && (*end == 's' || *end == 'm' || *end == 'h'))
      end++;
    if(!end || *end || q < 1 || q > 86400 * 30)
      bad = "a duration such as 60, 90s, 5m or 1h";
    else
      c->quiet_s = q * mul;
    break;
  }
  case 3:
  case 4:
    if(query_parse_i64(v, k == 3 ? 1 : 10, 3600000, &n))
      bad = k == 3 ? "milliseconds in [1, 3600000]" : "milliseconds in [10, 3600000]";
    else if(k == 3)
      c->timeout_ms = n;
    else
      c->max_backoff_ms = n;
    break;
  default:
    if(strcmp(v, "gzip") && strcmp(v, "none"))
      bad = "gzip or none";
    else
      c->gzip = !strcmp(v, "gzip");
  }
  if(bad) {
    fprintf(stderr, "loopscope-server: %s takes %s\n", a, bad);
    return -1;
  }
  return 1;
}

static int parse_size(const char *s, size_t *out)
{
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if(!end || end == s || s[0] == '-')
    return -1;
  unsigned long long mul = 1;
  if(*end == 'K' || *end == 'k')
    mul = 1024, end++;
  else if(*end == 'M' || *end == 'm')
    mul = 1024 * 1024, end++;
  else if(*end == 'G' || *end == 'g')
    mul = 1024 * 1024 * 1024, end++;
  if(*end || v == 0 || v > (1ull << 32) / mul)
    return -1;
  *out = (size_t)(v * mul);
  return 0;
}

/* An origin for frame-ancestors: a scheme://host[:port] or 'self' — nothing that could end the
 * directive or add another. */
static int origin_ok(const char *o)
{
  if(!*o || strlen(o) > 200)
    return 0;
  for(const char *p = o; *p; p++)
    if(*p == ';' || *p == ',' || *p == ' ' || *p == '"' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
      return 0;
  return 1;
}

/* 0 ok, 1 exit 0 (help/version), -1 usage error. */
static int parse_args(int argc, char **argv, options *o)
{
  o->listen = "127.0.0.1:7878";
  o->db = "./loopscope.db";
  o->token = getenv("LOOPSCOPE_TOKEN");
  if(o->token && !*o->token)
    o->token = NULL;
  o->log_level = "info";
  o->max_body = 16u << 20;
  o->max_memory = (size_t)512 << 20;
  o->max_batch_memory = (size_t)128 << 20;
  o->threads = 4;
  o->queue = 64;
  snprintf(o->ancestors, sizeof(o->ancestors), "%s", DEFAULT_ANCESTORS);
  o->max_connections = 1000;
  o->max_per_ip = 128;
  o->request_timeout = 30;
  o->idle_timeout = 30;
  o->max_streams = 64;
  o->live_heartbeat = 15;
  otlp_push_defaults(&o->otlp);
  char err[256];
  if(otlp_push_from_env(&o->otlp, getenv, err, sizeof(err))) {
    fprintf(stderr, "loopscope-server: %s\n", err);
    return -1;
  }
  for(int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if(!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage, stdout);
      return 1;
    }
    if(!strcmp(a, "--version")) {
      printf("loopscope-server %s\n", LOOPSCOPE_VERSION);
      return 1;
    }
    int rrc = retention_option(argc, argv, &i, o);
    if(rrc < 0)
      return -1;
    if(rrc)
      continue;
    int hrc = http_option(argc, argv, &i, o);
    if(hrc < 0)
      return -1;
    if(hrc)
      continue;
    int orc = otlp_option(argc, argv, &i, o);
    if(orc < 0)
      return -1;
    if(orc)
      continue;
    int takes = !strcmp(a, "--listen") || !strcmp(a, "--db") || !strcmp(a, "--token") ||
                !strcmp(a, "--max-body") || !strcmp(a, "--log-level") || !strcmp(a, "--embed-origin") ||
                !strcmp(a, "--threads") || !strcmp(a, "--queue") || !strcmp(a, "--max-memory") ||
                !strcmp(a, "--max-batch-memory");
    if(!takes) {
      fprintf(stderr, "loopscope-server: unknown option %s\n%s", a, usage);
      return -1;
    }
    if(!v) {
      fprintf(stderr, "loopscope-server: %s needs a value\n", a);
      return -1;
    }
    i++;
    if(!strcmp(a, "--listen"))
      o->listen = v;
    else if(!strcmp(a, "--db"))
      o->db = v;
    else if(!strcmp(a, "--token"))
      o->token = *v ? v : NULL;
    else if(!strcmp(a, "--log-level")) {
      if(log_parse_level(v) < 0) {
        fprintf(stderr, "loopscope-server: --log-level takes error, warn, info or debug\n");
        return -1;
      }
      o->log_level = v;
    }
    else if(!strcmp(a, "--max-body")) {
      if(parse_size(v, &o->max_body)) {
        fprintf(stderr, "loopscope-server: --max-body takes a size such as 1048576, 512K or 16M (at most 4G)\n");
        return -1;
      }
    }
    else if(!strcmp(a, "--max-memory") || !strcmp(a, "--max-batch-memory")) {
      if(parse_size(v, !strcmp(a, "--max-memory") ? &o->max_memory : &o->max_batch_memory)) {
        fprintf(stderr, "loopscope-server: %s takes a size such as 268435456, 256M or 1G (at most 4G)\n", a);
        return -1;
      }
    }
    else if(!strcmp(a, "--threads") || !strcmp(a, "--queue")) {
      int is_threads = !strcmp(a, "--threads");
      int64_t n;
      if(query_parse_i64(v, 1, is_threads ? 64 : 100000, &n)) {
        fprintf(stderr, "loopscope-server: %s takes an integer in [1, %d]\n", a, is_threads ? 64 : 100000);
        return -1;
      }
      if(is_threads)
        o->threads = (int)n;
      else
        o->queue = (int)n;
    }
    else { /* --embed-origin */
      if(!origin_ok(v)) {
        fprintf(stderr, "loopscope-server: --embed-origin takes one origin such as http://127.0.0.1:8000\n");
        return -1;
      }
      size_t used = o->custom_ancestors ? strlen(o->ancestors) : 0;
      int n = snprintf(o->ancestors + used, sizeof(o->ancestors) - used, "%s%s", used ? " " : "", v);
      if(n < 0 || (size_t)n >= sizeof(o->ancestors) - used) {
        fprintf(stderr, "loopscope-server: too many --embed-origin values\n");
        return -1;
      }
      o->custom_ancestors = 1;
    }
  }
  /* Without --public-url, the address it listens on is the best guess, unless that says nothing
   * (any address, or a port chosen at start). */
  const char *colon = strrchr(o->listen, ':');
  if(!o->public_url[0] && colon && strcmp(colon, ":0") && strncmp(o->listen, "0.0.0.0:", 8) &&
     strncmp(o->listen, "[::]:", 5) && strlen(o->listen) < sizeof(o->public_url) - 8)
    snprintf(o->public_url, sizeof(o->public_url), "http://%s", o->listen);
  o->otlp.public_url = o->public_url[0] ? o->public_url : NULL;
  /* A request that could never fit would be answered 503 (retry) forever. */
  if(o->max_memory < 2 * (o->max_body + 1) + o->max_batch_memory) {
    fprintf(stderr, "loopscope-server: --max-memory (%zu bytes) must be at least 2 x --max-body + "
                    "--max-batch-memory (%zu bytes): a body and its decoded copy and parsed batch must fit\n",
            o->max_memory, 2 * (o->max_body + 1) + o->max_batch_memory);
    return -1;
  }
  return 0;
}

/* HOST:PORT or [V6]:PORT → a socket address. */
static int resolve(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
  char host[256];
  const char *colon = strrchr(listen, ':');
  if(!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host))
    return -1;
  size_t hn = (size_t)(colon - listen);
  memcpy(host, listen, hn);
  host[hn] = '\0';
  if(host[0] == '[' && hn > 2 && host[hn - 1] == ']') {
    memmove(host, host + 1, hn - 2);
    host[hn - 2] = '\0';
  }
  int64_t port;
  if(query_parse_i64(colon + 1, 0, 65535, &port))
    return -1;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if(getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
    return -1;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  if(ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else if(ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    return -1;
  return 0;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
  if(ss->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a);
}

int main(int argc, char **argv)
{
  options o;
  memset(&o, 0, sizeof(o));
  int prc = parse_args(argc, argv, &o);
  if(prc)
    return prc > 0 ? 0 : 2;
  log_set_level(log_parse_level(o.log_level));
  atexit(arena_pool_drain); /* every return below comes after the threads that use arenas stopped */

  struct sockaddr_storage addr;
  socklen_t addrlen = 0;
  if(resolve(o.listen, &addr, &addrlen)) {
    log_msg(LOG_ERROR, "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:7878", o.listen);
    return 2;
  }
  if(!is_loopback(&addr) && !o.token) {
    log_msg(LOG_ERROR, "--listen %s is not a loopback address: set --token (or LOOPSCOPE_TOKEN) too", o.listen);
    return 2;
  }

  /* Signals go to this thread only: block them before any other thread exists. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  metrics m;
  metrics_init(&m);
  membudget budget; /* outlives the writer: it gives queued batches' bytes back */
  membudget_init(&budget, (long long)o.max_memory);
  store_options so;
  store_default_options(&so, o.db);
  /* one per worker thread, one per query off those threads (http.h), one for writer.c's figures
   * thread, which reads a large ended session for seconds */
  so.readers = o.threads + HTTP_OFFLOAD_MAX + 1;
  store *s = NULL;
  char err[512] = "";
  int rc = store_open(&so, &s, err, sizeof(err));
  if(rc) {
    log_msg(LOG_ERROR, "cannot open the database %s: %s", o.db, err);
    return 1;
  }
  writer *w = NULL;
  rc = writer_start(s, &m, o.queue, 64, &w);
  if(rc) {
    log_msg(LOG_ERROR, "cannot start the writer thread");
    store_close(s);
    return 1;
  }
  writer_set_limits(w, &o.limits);
  http_config hc;
  memset(&hc, 0, sizeof(hc));
  hc.addr = (const struct sockaddr *)&addr;
  hc.addrlen = addrlen;
  hc.token = o.token;
  hc.max_body = o.max_body;
  hc.threads = o.threads;
  hc.frame_ancestors = o.ancestors;
  hc.listen = o.listen;
  hc.allowed_hosts = o.allowed_hosts;
  hc.nallowed_hosts = o.nallowed_hosts;
  hc.max_connections = o.max_connections;
  hc.max_per_ip = o.max_per_ip;
  hc.request_timeout_s = o.request_timeout;
  hc.idle_timeout_s = o.idle_timeout;
  hc.max_streams = o.max_streams;
  hc.live_heartbeat_ms = o.live_heartbeat * 1000;
  hc.public_url = o.otlp.public_url;
  ingest_default_limits(&hc.limits);
  hc.limits.max_tree = o.max_batch_memory;
  hc.budget = &budget;
  http_server *h = NULL;
  rc = http_start(&hc, s, w, &m, &h);
  if(rc) {
    log_msg(LOG_ERROR, "cannot listen on %s (address in use?)", o.listen);
    writer_stop(w);
    store_close(s);
    return 1;
  }
  char host[INET6_ADDRSTRLEN] = "127.0.0.1";
  if(addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, host, sizeof(host));
  else
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr)->sin6_addr, host, sizeof(host));
  log_msg(LOG_INFO, "loopscope-server %s listening on http://%s%s%s:%u/ (db %s, schema %d%s)",
          LOOPSCOPE_VERSION, addr.ss_family == AF_INET6 ? "[" : "", host,
          addr.ss_family == AF_INET6 ? "]" : "", http_port(h), o.db, store_schema_version(s),
          o.token ? ", token required" : "");

  otlp_push *push = NULL;
  if(o.otlp.endpoint && otlp_push_start(&o.otlp, s, &m, &push)) {
    log_msg(LOG_ERROR, "cannot start the OTLP push");
    http_stop(h, 10000);
    writer_stop(w);
    store_close(s);
    return 1;
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  log_msg(LOG_INFO, "%s: stopping (finishing requests in flight and queued batches)",
          sig == SIGINT ? "SIGINT" : "SIGTERM");
  http_stop(h, 10000);
  otlp_push_stop(push); /* a request in flight is abandoned: its body stays in the outbox */
  writer_stop(w);
  store_close(s);
  log_msg(LOG_INFO, "stopped cleanly");
  return 0;
}
