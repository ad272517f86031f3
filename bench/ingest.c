/* ingest.c — bench_ingest: posts gen.c's 1000-event batches over N keep-alive connections to a
 * loopscope server (started here, or --url) and prints end-to-end events/s, then the raw SQLite
 * rate of the same rows (rawsql.c) and the ratio. With --per-post K each POST carries K batches of
 * K sessions in one multi-batch body (docs/api.md), so small batches (--events 60) posted one per
 * request and K per request compare on the same machine. It measures; it asserts nothing. */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "gen.h"
#include "rawsql.h"

#ifndef LOOPSCOPE_SOURCE_DIR
#define LOOPSCOPE_SOURCE_DIR "."
#endif
#ifndef LOOPSCOPE_SERVER_BIN
#define LOOPSCOPE_SERVER_BIN "build/server/loopscope-server"
#endif

#define BODY_CAP (8u << 20) /* a 1000-event batch is ~110 KiB; room for --events up to ~60k */

typedef struct options {
  const char *url, *server, *schema, *token, *dir;
  int connections, sessions_per_conn, events, raw_batches, no_raw, raw_only, keep;
  int per_post; /* batches per POST: 1 = a plain v1 body, more = {"v":1,"batches":[...]} */
  double seconds;
  long batches; /* total; 0 = run for `seconds` */
} options;

typedef struct shared {
  const options *opt;
  char ingest_url[320];
  atomic_long claimed; /* batches handed out (with --batches) */
  atomic_int stop, failed;
  double deadline;
} shared;

typedef struct worker {
  pthread_t th;
  int index;
  shared *sh;
  long ok, retries, unexpected;
  long events;
  double *lat; /* seconds per accepted request */
  size_t nlat, caplat;
  char err[512];
} worker;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* ---- HTTP --------------------------------------------------------------------------------- */

typedef struct resp {
  char buf[2048];
  size_t len;
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  resp *r = ud;
  size_t len = size * n, room = sizeof r->buf - 1 - r->len;
  size_t take = len < room ? len : room;
  memcpy(r->buf + r->len, p, take);
  r->len += take;
  r->buf[r->len] = '\0';
  return len;
}

static CURL *new_handle(const options *o, struct curl_slist **hdrs) {
  CURL *c = curl_easy_init();
  if (!c) return NULL;
  *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  *hdrs = curl_slist_append(*hdrs, "Expect:"); /* no 100-continue round trip */
  if (o->token) {
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
    *hdrs = curl_slist_append(*hdrs, auth);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  return c;
}

/* GET url into r; returns the HTTP status or -1. */
static long http_get(const char *url, resp *r) {
  CURL *c = curl_easy_init();
  if (!c) return -1;
  r->len = 0;
  r->buf[0] = '\0';
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  long code = -1;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  return code;
}

/* ---- the posting threads ------------------------------------------------------------------ */

static int claim(shared *sh) {
  if (atomic_load(&sh->stop) || atomic_load(&sh->failed)) return 0;
  if (sh->opt->batches > 0) return atomic_fetch_add(&sh->claimed, 1) < sh->opt->batches;
  return now() < sh->deadline;
}

static void *post_loop(void *arg) {
  worker *w = arg;
  shared *sh = w->sh;
  const options *o = sh->opt;
  int ns = o->sessions_per_conn;
  gen_session *sess = calloc((size_t)ns, sizeof *sess);
  gen_batch b = {0};
  b.ev = calloc((size_t)o->events, sizeof *b.ev);
  char *body = malloc(BODY_CAP);
  struct curl_slist *hdrs = NULL;
  CURL *c = new_handle(o, &hdrs);
  if (!sess || !b.ev || !body || !c) {
    snprintf(w->err, sizeof w->err, "out of memory or curl init failed");
    atomic_store(&sh->failed, 1);
    goto out;
  }
  for (int i = 0; i < ns; i++) {
    char id[48];
    snprintf(id, sizeof id, "bench-c%d-s%d-%ld", w->index, i, (long)getpid());
    gen_session_init(&sess[i], id, (uint64_t)(w->index * 1000 + i + 1));
  }
  resp r;
  curl_easy_setopt(c, CURLOPT_URL, sh->ingest_url);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  long seq = 0;
  while (claim(sh)) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "b%d", w->index);
    /* per_post batches of as many sessions, back to back in one body (one: the plain v1 body) */
    size_t len = 0, nev = 0;
    int fits = 1;
    if (o->per_post > 1) len = (size_t)snprintf(body, BODY_CAP, "{\"v\":1,\"batches\":[");
    for (int k = 0; k < o->per_post && fits; k++) {
      gen_next_batch(&sess[(seq * o->per_post + k) % ns], &b, (size_t)o->events, prefix);
      size_t n = gen_encode_json(&b, body + len + (k > 0), BODY_CAP - len - 3);
      if (k) body[len] = ',';
      len += n + (k > 0);
      nev += b.n;
      fits = n > 0;
    }
    if (!fits) len = 0;
    if (len && o->per_post > 1) {
      memcpy(body + len, "]}", 3);
      len += 2;
    }
    if (!len) {
      snprintf(w->err, sizeof w->err, "batch larger than %u bytes", BODY_CAP);
      atomic_store(&sh->failed, 1);
      break;
    }
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    for (;;) {
      r.len = 0;
      double t0 = now();
      CURLcode cc = curl_easy_perform(c);
      double dt = now() - t0;
      long code = 0;
      if (cc != CURLE_OK) {
        snprintf(w->err, sizeof w->err, "POST %s: %s", sh->ingest_url, curl_easy_strerror(cc));
        atomic_store(&sh->failed, 1);
        goto out;
      }
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
      if (code == 503) { /* storage busy: back off briefly and send the same batch again */
        w->retries++;
        sleep_s(0.005);
        continue;
      }
      if (code == 202) {
        w->ok++;
        w->events += (long)nev;
        if (w->nlat == w->caplat) {
          size_t cap = w->caplat ? w->caplat * 2 : 4096;
          double *bigger = realloc(w->lat, cap * sizeof *bigger);
          if (bigger) {
            w->lat = bigger;
            w->caplat = cap;
          }
        }
        if (w->nlat < w->caplat) w->lat[w->nlat++] = dt;
      } else {
        w->unexpected++;
        snprintf(w->err, sizeof w->err, "POST answered %ld: %.400s", code, r.buf);
        atomic_store(&sh->failed, 1);
        goto out;
      }
      break;
    }
    seq++;
  }
out:
  if (c) curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  free(body);
  free(b.ev);
  free(sess);
  return NULL;
}

/* ---- the server under test ------------------------------------------------------------------ */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static pid_t start_server(const options *o, const char *dir, char *base, size_t baselen) {
  int port = free_port();
  if (port < 0) return -1;
  char listen[64], db[1024], log[1024];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  snprintf(db, sizeof db, "%s/e2e.db", dir);
  snprintf(log, sizeof log, "%s/server.log", dir);
  snprintf(base, baselen, "http://%s", listen);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
      close(fd);
    }
    const char *argv[12];
    int n = 0;
    argv[n++] = o->server;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--db";
    argv[n++] = db;
    if (o->token) {
      argv[n++] = "--token";
      argv[n++] = o->token;
    }
    argv[n] = NULL;
    execv(o->server, (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", o->server, strerror(errno));
    _exit(127);
  }
  char health[300];
  snprintf(health, sizeof health, "%s/healthz", base);
  for (int i = 0; i < 200; i++) {
    resp r;
    if (http_get(health, &r) == 200) return pid;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      fprintf(stderr, "ingest: the server exited at start; see %s\n", log);
      return -1;
    }
    sleep_s(0.05);
  }
  fprintf(stderr, "ingest: the server did not answer /healthz in 10 s; see %s\n", log);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void stop_server(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "ingest: note: the server did not exit 0 on SIGTERM (status %d)\n", st);
      return;
    }
    sleep_s(0.05);
  }
  fprintf(stderr, "ingest: the server did not stop within 15 s of SIGTERM; killing it\n");
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Reads one un-labelled counter from a Prometheus text body; -1 when absent. */
static double metric(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (!strncmp(p, name, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
  }
  return -1;
}

/* ---- the raw baseline ------------------------------------------------------------------------ */

/* Inserts `batches` batches of the same workload (same generator, same number of sessions) into
 * a fresh raw.db; returns events/s of the inserts alone (generation timed apart), -1 on error. */
static double run_raw(const options *o, int batches, const char *dir, double *gen_rate) {
  char db[1024], err[512];
  snprintf(db, sizeof db, "%s/raw.db", dir);
  rawsql *r = rawsql_open(db, o->schema, err, sizeof err);
  if (!r) {
    fprintf(stderr, "ingest: raw baseline: %s\n", err);
    return -1;
  }
  int ns = o->sessions_per_conn * o->connections;
  gen_session *sess = calloc((size_t)ns, sizeof *sess);
  gen_batch b = {0};
  b.ev = calloc((size_t)o->events, sizeof *b.ev);
  char *body = malloc(BODY_CAP);
  double rate = -1, tins = 0, tgen = 0;
  long events = 0;
  if (!sess || !b.ev || !body) goto out;
  for (int i = 0; i < ns; i++) {
    char id[48];
    snprintf(id, sizeof id, "raw-s%d", i);
    gen_session_init(&sess[i], id, (uint64_t)i + 1);
  }
  for (int i = 0; i < batches; i++) {
    double t0 = now();
    gen_next_batch(&sess[i % ns], &b, (size_t)o->events, "raw");
    size_t len = gen_encode_json(&b, body, BODY_CAP); /* what the client pays per batch */
    double t1 = now();
    if (!len || rawsql_put(r, &b, err, sizeof err)) {
      fprintf(stderr, "ingest: raw baseline: %s\n", len ? err : "batch too large");
      goto out;
    }
    tins += now() - t1;
    tgen += t1 - t0;
    events += (long)b.n;
  }
  rate = (double)events / tins;
  *gen_rate = (double)events / tgen;
out:
  free(body);
  free(b.ev);
  free(sess);
  rawsql_close(r);
  return rate;
}

/* Removes the temp dir's files unless --keep (or a failure worth a look at server.log). */
static void cleanup(const char *dir, int keep) {
  static const char *files[] = {"raw.db", "raw.db-wal", "raw.db-shm", "e2e.db", "e2e.db-wal",
                                "e2e.db-shm", "server.log"};
  if (keep) {
    printf("  kept %s\n", dir);
    return;
  }
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_ingest [--url http://host:port | --server PATH] [--connections N]\n"
          "                    [--seconds S | --batches N] [--events N] [--sessions-per-conn N]\n"
          "                    [--raw-batches N] [--no-raw | --raw-only] [--schema schema.sql] [--token T]\n"
          "                    [--dir DIR] [--keep] [--per-post K]\n"
          "Posts ingest-v1 batches over N keep-alive connections and prints end-to-end events/s,\n"
          "the raw SQLite insert rate of the same rows (as many batches as were posted, or\n"
          "--raw-batches) and their ratio. --per-post K: K batches (of K sessions) per POST.\n"
          "Without --url it starts\n"
          "the server binary (default %s) on a free loopback port with a temp db.\n",
          LOOPSCOPE_SERVER_BIN);
}

static int parse_args(int argc, char **argv, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = 1;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--no-raw")) {
      o->no_raw = 1;
      takes = 0;
    } else if (!strcmp(a, "--keep")) {
      o->keep = 1;
      takes = 0;
    } else if (!strcmp(a, "--raw-only")) {
      o->raw_only = 1;
      takes = 0;
    } else if (!v) {
      fprintf(stderr, "ingest: %s needs a value\n", a);
      return -1;
    } else if (!strcmp(a, "--url")) o->url = v;
    else if (!strcmp(a, "--server")) o->server = v;
    else if (!strcmp(a, "--schema")) o->schema = v;
    else if (!strcmp(a, "--token")) o->token = v;
    else if (!strcmp(a, "--dir")) o->dir = v;
    else if (!strcmp(a, "--connections")) o->connections = atoi(v);
    else if (!strcmp(a, "--sessions-per-conn")) o->sessions_per_conn = atoi(v);
    else if (!strcmp(a, "--events")) o->events = atoi(v);
    else if (!strcmp(a, "--raw-batches")) o->raw_batches = atoi(v);
    else if (!strcmp(a, "--seconds")) o->seconds = atof(v);
    else if (!strcmp(a, "--batches")) o->batches = atol(v);
    else if (!strcmp(a, "--per-post")) o->per_post = atoi(v);
    else {
      fprintf(stderr, "ingest: unknown option %s\n", a);
      usage(stderr);
      return -1;
    }
    i += takes;
  }
  if (o->connections < 1 || o->connections > 256 || o->events < 1 || o->events > 60000 ||
      o->sessions_per_conn < 1 || o->raw_batches < 0 || o->seconds <= 0 || o->batches < 0 ||
      o->per_post < 1 || o->per_post > 10000) {
    fprintf(stderr, "ingest: option out of range\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  options o = {.server = LOOPSCOPE_SERVER_BIN,
               .schema = LOOPSCOPE_SOURCE_DIR "/schema/schema.sql",
               .connections = 4,
               .sessions_per_conn = 2,
               .events = 1000,
               .raw_batches = 0,
               .seconds = 10,
               .per_post = 1};
  if (parse_args(argc, argv, &o)) return 2;
  if (o.sessions_per_conn < o.per_post) o.sessions_per_conn = o.per_post; /* a session per batch */
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;

  char dir[512];
  if (snprintf(dir, sizeof dir, "%s/loopscope-bench-XXXXXX", o.dir ? o.dir : "/tmp") >= (int)sizeof dir) {
    fprintf(stderr, "ingest: --dir too long\n");
    return 2;
  }
  if (!mkdtemp(dir)) {
    fprintf(stderr, "ingest: mkdtemp %s: %s\n", dir, strerror(errno));
    return 1;
  }

  printf("loopscope ingest benchmark: %d connections, %d events/batch, %d batches/POST, %d sessions, %s\n",
         o.connections, o.events, o.per_post, o.connections * o.sessions_per_conn,
         o.batches ? "fixed batch count" : "fixed duration");
  printf("  temp dir %s (server db and raw db on the same filesystem)\n", dir);

  if (o.raw_only) {
    double gen_rate = -1, raw = run_raw(&o, o.raw_batches ? o.raw_batches : 1000, dir, &gen_rate);
    if (raw > 0)
      printf("  raw SQLite   %9.0f events/s\n  client gen   %9.0f events/s per thread\n", raw, gen_rate);
    cleanup(dir, o.keep);
    return raw > 0 ? 0 : 1;
  }

  char base[200];
  pid_t pid = 0;
  if (o.url) {
    if (snprintf(base, sizeof base, "%s", o.url) >= (int)sizeof base) {
      fprintf(stderr, "ingest: --url too long\n");
      return 2;
    }
  } else {
    pid = start_server(&o, dir, base, sizeof base);
    if (pid < 0) {
      cleanup(dir, 1);
      return 1;
    }
    printf("  server %s at %s (db %s/e2e.db)\n", o.server, base, dir);
  }

  shared sh = {.opt = &o};
  snprintf(sh.ingest_url, sizeof sh.ingest_url, "%s/api/v1/ingest", base);
  worker *w = calloc((size_t)o.connections, sizeof *w);
  if (!w) return 1;
  double t0 = now();
  sh.deadline = t0 + o.seconds;
  int started = 0;
  for (int i = 0; i < o.connections; i++) {
    w[i].index = i;
    w[i].sh = &sh;
    if (pthread_create(&w[i].th, NULL, post_loop, &w[i]) != 0) break;
    started++;
  }
  for (int i = 0; i < started; i++) pthread_join(w[i].th, NULL);
  double elapsed = now() - t0;

  long ok = 0, events = 0, retries = 0;
  size_t nlat = 0;
  for (int i = 0; i < started; i++) {
    ok += w[i].ok;
    events += w[i].events;
    retries += w[i].retries;
    nlat += w[i].nlat;
    if (w[i].err[0]) fprintf(stderr, "ingest: connection %d: %s\n", i, w[i].err);
  }
  double *lat = nlat ? malloc(nlat * sizeof *lat) : NULL;
  double p50 = 0, p99 = 0;
  if (lat) {
    size_t k = 0;
    for (int i = 0; i < started; i++)
      for (size_t j = 0; j < w[i].nlat; j++) lat[k++] = w[i].lat[j];
    qsort(lat, nlat, sizeof *lat, cmp_double);
    p50 = lat[(nlat + 1) / 2 - 1];
    p99 = lat[(nlat * 99 + 99) / 100 - 1];
  }
  double e2e = (double)events / elapsed;

  resp m;
  char murl[300];
  snprintf(murl, sizeof murl, "%s/metrics", base);
  double stored = -1;
  if (http_get(murl, &m) == 200) stored = metric(m.buf, "loopscope_events_total");
  if (pid > 0) stop_server(pid);

  /* the baseline stores as many batches as the server did, so both databases end the same size */
  int raw_batches = o.raw_batches ? o.raw_batches : (int)(ok > 0 ? ok * o.per_post : 1);
  double raw = -1, gen_rate = -1;
  if (!o.no_raw) raw = run_raw(&o, raw_batches, dir, &gen_rate);

  printf("\n");
  printf("  end-to-end   %9.0f events/s  (%ld POSTs of %d batch(es), %ld events in %.2f s; 503 retries %ld;\n"
         "                                  per-POST latency p50 %.1f ms, p99 %.1f ms)\n",
         e2e, ok, o.per_post, events, elapsed, retries, p50 * 1e3, p99 * 1e3);
  if (stored >= 0) printf("  server says  loopscope_events_total %.0f\n", stored);
  if (raw > 0) {
    printf("  raw SQLite   %9.0f events/s  (%d batches: one prepared statement per table, one\n"
           "                                  transaction per batch, WAL, synchronous=NORMAL)\n",
           raw, raw_batches);
    printf("  client gen   %9.0f events/s  per thread (generating + JSON-encoding, included in end-to-end)\n",
           gen_rate);
    printf("  ratio end-to-end / raw = %.2f   (target >= 0.40: %s)\n", e2e / raw,
           e2e / raw >= 0.4 ? "pass" : "MISS");
  }
  printf("  end-to-end target >= 300000 events/s: %s\n", e2e >= 300000 ? "pass" : "MISS");

  int failed = atomic_load(&sh.failed);
  int missed = e2e < 300000 || (raw > 0 && e2e / raw < 0.4);
  cleanup(dir, o.keep || failed);
  for (int i = 0; i < started; i++) free(w[i].lat);
  free(w);
  free(lat);
  curl_global_cleanup();
  return failed ? 1 : missed ? 3 : 0; /* 3: ran fine, a target was missed */
}
