/* replay_main.c — gcc-friendly driver for any LLVMFuzzerTestOneInput target: replays the corpus,
 * then a bounded, deterministic (fixed-seed) mutation loop keeping inputs with new signatures, and
 * saves the input before any crash. libFuzzer/AFL++ take its place where clang exists (README.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define HAVE_SANITIZER 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif
#ifdef HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

enum {
  MAX_INPUT = 2u << 20,      /* bytes of one input, corpus file or mutant */
  MAX_CORPUS = 4096,         /* files read from the corpus */
  MAX_POOL = 8192,           /* inputs kept for mutation (corpus + new-signature mutants) */
  POOL_BYTES = 64u << 20,    /* total bytes the pool may hold */
  SIG_SLOTS = 1u << 16,      /* signature hash set (open addressing) */
  INPUT_TIMEOUT_S = 20,      /* one input running longer than this is a hang */
};

typedef struct input {
  uint8_t *p;
  size_t len;
} input;

/* The driver's state is process-wide by nature: signal handlers and the sanitizer's death
 * callback must find the input being run, and fuzz_feedback() has no context argument. */
static struct {
  input pool[MAX_POOL];
  size_t npool, nseeds, pool_bytes;
  uint64_t sigs[SIG_SLOTS];
  size_t nsigs;
  int new_sig;               /* the current input produced a signature not seen before */
  const uint8_t *cur;        /* the input being run, for the crash handlers */
  size_t cur_len;
  char crash_path[4096];     /* where the crash handlers write it */
  volatile sig_atomic_t saved;
  volatile sig_atomic_t stop; /* SIGINT/SIGTERM: finish the current input, then report */
} g;

/* ---------------------------------------------------------------- crash capture */

static void save_current_input(void)
{
  if(g.saved || !g.cur)
    return;
  g.saved = 1;
  /* async-signal-safe only: open, write, close */
  int fd = open(g.crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if(fd < 0)
    return;
  size_t off = 0;
  while(off < g.cur_len) {
    ssize_t w = write(fd, g.cur + off, g.cur_len - off);
    if(w <= 0)
      break;
    off += (size_t)w;
  }
  close(fd);
  static const char msg1[] = "\nfuzz_replay: input saved to ";
  ssize_t ignored = write(2, msg1, sizeof(msg1) - 1);
  ignored = write(2, g.crash_path, strlen(g.crash_path));
  ignored = write(2, "\n", 1);
  (void)ignored;
}

static void on_fatal_signal(int sig)
{
  if(sig == SIGALRM) {
    static const char msg[] = "\nfuzz_replay: one input ran too long (hang)\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
  }
  save_current_input();
  signal(sig, SIG_DFL);
  raise(sig == SIGALRM ? SIGABRT : sig);
}

#ifdef HAVE_SANITIZER
/* gcc links UBSan as its own runtime, whose death callbacks are not ASan's: make it abort (after
 * printing its stack), so the SIGABRT handler saves the input. UBSAN_OPTIONS still overrides. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
  return "print_stacktrace=1:abort_on_error=1";
}
#endif

static void on_stop_signal(int sig)
{
  (void)sig;
  g.stop = 1;
}

static void install_crash_handlers(void)
{
  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);
#ifdef HAVE_SANITIZER
  /* ASan/UBSan report SEGVs, overflows and UB themselves, then call this before exiting. */
  __sanitizer_set_death_callback(save_current_input);
  int sigs[] = {SIGABRT, SIGALRM};
#else
  int sigs[] = {SIGABRT, SIGALRM, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#endif
  for(size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    signal(sigs[i], on_fatal_signal);
}

/* ---------------------------------------------------------------- feedback */

void fuzz_feedback(const char *signature)
{
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for(const unsigned char *s = (const unsigned char *)signature; *s; s++)
    h = (h ^ *s) * 1099511628211ull;
  h |= 1; /* 0 marks an empty slot */
  if(g.nsigs >= SIG_SLOTS / 2)
    return; /* the set is full enough: stop learning, keep fuzzing */
  size_t i = (size_t)(h & (SIG_SLOTS - 1));
  while(g.sigs[i]) {
    if(g.sigs[i] == h)
      return;
    i = (i + 1) & (SIG_SLOTS - 1);
  }
  g.sigs[i] = h;
  g.nsigs++;
  g.new_sig = 1;
}

/* ---------------------------------------------------------------- running one input */

static void run_one(const uint8_t *p, size_t n, const char *crash_dir, const char *label)
{
  snprintf(g.crash_path, sizeof(g.crash_path), "%s/crash-%s", crash_dir, label);
  g.cur = p;
  g.cur_len = n;
  g.new_sig = 0;
  alarm(INPUT_TIMEOUT_S);
  LLVMFuzzerTestOneInput(p, n);
  alarm(0);
  g.cur = NULL;
}

/* ---------------------------------------------------------------- deterministic randomness */

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t below(size_t n) /* uniform enough in [0, n), n > 0 */
{
  return (size_t)(rnd() % n);
}

/* ---------------------------------------------------------------- the mutant buffer */

typedef struct mbuf {
  uint8_t *p;
  size_t len;    /* cap is MAX_INPUT, allocated once */
} mbuf;

/* Replaces m[at, at+del) by src[0..n); does nothing when the result would not fit. */
static void mb_replace(mbuf *m, size_t at, size_t del, const void *src, size_t n)
{
  if(at > m->len || del > m->len - at || n > MAX_INPUT || m->len - del > MAX_INPUT - n)
    return;
  memmove(m->p + at + n, m->p + at + del, m->len - at - del);
  if(n)
    memcpy(m->p + at, src, n);
  m->len = m->len - del + n;
}

static void mb_insert(mbuf *m, size_t at, const void *src, size_t n)
{
  mb_replace(m, at, 0, src, n);
}

/* Inserts `count` copies of unit[0..n) at `at` (built in place, no big temporaries). */
static void mb_insert_repeat(mbuf *m, size_t at, const char *unit, size_t n, size_t count)
{
  if(at > m->len || n == 0 || count > (MAX_INPUT - m->len) / n)
    return;
  size_t add = n * count;
  memmove(m->p + at + add, m->p + at, m->len - at);
  for(size_t i = 0; i < count; i++)
    memcpy(m->p + at + i * n, unit, n);
  m->len += add;
}

/* Position of the first byte at or after a random start that is in `set`, or m->len. */
static size_t find_from_random(const mbuf *m, const char *set)
{
  if(!m->len)
    return 0;
  size_t start = below(m->len);
  for(size_t k = 0; k < m->len; k++) {
    size_t i = (start + k) % m->len;
    if(m->p[i] && strchr(set, m->p[i]))
      return i;
  }
  return m->len;
}

static const char *const boundary_numbers[] = {
  "9007199254740992", "9007199254740991", "9007199254740993", "-1", "-0", "0", "1", "1e308",
  "1e309", "-1e308", "1.5", "0.5", "1e2", "1E15", "9.007199254740992e15", "2.5e-1", "1e-400",
  "4.9e-324", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
  "18446744073709551616", "00", "01", "0x10", "NaN", "Infinity", "-", "1.", ".5", "1e", "+1",
  "99999999999999999999999999999", "\"1\"", "true", "null", "[]", "{}", "2147483648", "-2147483649",
};

static const char *const bad_utf8[] = {
  "\xC0\x80", "\xC1\xBF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
  "\xFF", "\xFE", "\x80", "\xE2\x82", "\xF0\x9F\x98", "\xE0\x80\x80", "\xF0\x80\x80\x80",
  "\\ud800", "\\udc00", "\\ud800\\u0041", "\\u0000", "\\ud83d\\ude00", "\\uZZZZ", "\\",
  "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x01", "\x7F", "\\n\\t\\\"",
};

/* Pieces of the ingest grammar (and of query strings), spliced in as tokens. */
static const char *const dict[] = {
  "{", "}", "[", "]", ",", ":", "\"", "null", "true", "false", "\"v\":1,", "\"v\":2,",
  "\"k\":\"task\",", "\"k\":\"step\",", "\"k\":\"await\",", "\"k\":\"block\",", "\"k\":\"lag\",",
  "\"k\":\"done\",", "\"k\":\"drop\",", "\"k\":\"end\",", "\"k\":\"nope\",", "\"k\":1,", "\"k\":null,",
  "\"id\":1,", "\"id\":0,", "\"parent\":2,", "\"t\":0,", "\"d\":0,", "\"line\":null,", "\"n\":5,",
  "\"state\":\"error\",", "\"exc\":\"E\",", "\"stack\":[],", "\"stack\":[{}],", "\"stack\":null,",
  "{\"file\":\"a.py\",\"line\":1,\"func\":\"f\",\"src\":\"x()\"}", "\"meta\":{},", "\"meta\":null,",
  "\"started_unix_ns\":\"1\",", "\"pid\":1,", "\"events\":[],", "\"batch\":\"b\",", "\"session\":\"s\",",
  "{\"k\":\"task\",\"id\":3,\"parent\":1,\"t\":5,\"name\":\"T\",\"coro\":\"c\"},",
  "{\"k\":\"step\",\"id\":3,\"t\":6,\"d\":7},", "{\"k\":\"lag\",\"t\":1,\"d\":1},",
  "{\"k\":\"block\",\"t\":1,\"d\":2,\"stack\":[{\"file\":\"f\",\"line\":3}]},",
  "{\"k\":\"done\",\"id\":3,\"t\":9,\"state\":\"ok\"},", "{\"k\":\"end\",\"t\":10},",
  /* query strings (fuzz_query) */
  "&", "=", "from=", "to=", "px=", "tasks=", "min_ms=", "limit=", "name=", "&from=0", "&to=1",
  "&px=1", "&tasks=1,2", "&min_ms=0.001", "&limit=1", ",", "%00", "\\u00e9",
};

/* Replaces the number (or word) around a random digit by a boundary value. */
static void mutate_number(mbuf *m)
{
  size_t i = find_from_random(m, "0123456789");
  if(i >= m->len)
    return;
  size_t a = i, b = i;
  while(a > 0 && strchr("0123456789-+.eE", m->p[a - 1]) && m->p[a - 1])
    a--;
  while(b < m->len && m->p[b] && strchr("0123456789-+.eE", m->p[b]))
    b++;
  const char *v = boundary_numbers[below(sizeof(boundary_numbers) / sizeof(boundary_numbers[0]))];
  mb_replace(m, a, b - a, v, strlen(v));
}

/* Nesting around the parser's depth limits, and far beyond them. */
static void mutate_nesting(mbuf *m)
{
  static const size_t depths[] = {1, 3, 4, 5, 12, 14, 15, 16, 17, 64, 999, 1000, 1001, 100000};
  size_t d = depths[below(sizeof(depths) / sizeof(depths[0]))];
  size_t at = m->len ? below(m->len + 1) : 0;
  int obj = rnd() & 1;
  /* arrays: [[[...]]]; objects: {"a":{"a":...}} */
  if(obj) {
    mb_insert_repeat(m, at, "{\"a\":", 5, d);
    mb_insert_repeat(m, at + 5 * d, "}", 1, d);
  }
  else {
    mb_insert_repeat(m, at, "[", 1, d);
    mb_insert_repeat(m, at + d, "]", 1, d);
  }
}

/* A long string run just after a quote: around every string limit, in 1- or 2-byte chars. */
static void mutate_long_string(mbuf *m)
{
  static const size_t lens[] = {1, 8, 9, 12, 13, 127, 128, 129, 4095, 4096, 4097, 16383, 16384, 16385, 70000};
  size_t i = find_from_random(m, "\"");
  if(i >= m->len)
    return;
  size_t n = lens[below(sizeof(lens) / sizeof(lens[0]))];
  switch(below(3)) {
  case 0: mb_insert_repeat(m, i + 1, "x", 1, n); break;
  case 1: mb_insert_repeat(m, i + 1, "\xC3\xA9", 2, n / 2 + (n & 1)); break;
  default: mb_insert_repeat(m, i + 1, "\\u00e9", 6, n / 2 + 1); break;
  }
}

/* Duplicates one "member" (from a quote to the next comma or brace) right before itself, so the
 * same key appears twice with possibly different values after other mutations. */
static void mutate_duplicate_member(mbuf *m)
{
  size_t i = find_from_random(m, "\"");
  if(i >= m->len)
    return;
  size_t j = i + 1;
  while(j < m->len && m->p[j] != ',' && m->p[j] != '}' && m->p[j] != ']' && j - i < 256)
    j++;
  if(j >= m->len || j - i >= 256)
    return;
  uint8_t tmp[257];
  size_t n = j - i;
  memcpy(tmp, m->p + i, n);
  tmp[n++] = ',';
  mb_insert(m, i, tmp, n);
}

static void mutate(mbuf *m)
{
  size_t rounds = 1 + below(4);
  for(size_t r = 0; r < rounds; r++) {
    size_t pick = below(16);
    switch(pick) {
    case 0: /* bit flip */
      if(m->len)
        m->p[below(m->len)] ^= (uint8_t)(1u << below(8));
      break;
    case 1: { /* interesting byte */
      static const uint8_t bytes[] = {0, 0xFF, 0x80, '"', '\\', '{', '}', '[', ']', ',', ':', '-', '0', '9', ' ', '\n', 'e'};
      if(m->len)
        m->p[below(m->len)] = bytes[below(sizeof(bytes))];
      break;
    }
    case 2: /* delete a range */
      if(m->len) {
        size_t at = below(m->len);
        mb_replace(m, at, 1 + below(m->len - at < 64 ? m->len - at : 64), "", 0);
      }
      break;
    case 3: /* copy a range of itself elsewhere */
      if(m->len) {
        size_t from = below(m->len), n = 1 + below(m->len - from < 128 ? m->len - from : 128);
        uint8_t tmp[128];
        memcpy(tmp, m->p + from, n);
        mb_insert(m, below(m->len + 1), tmp, n);
      }
      break;
    case 4: { /* splice: my head, another pool input's tail */
      const input *o = &g.pool[below(g.npool)];
      size_t a = m->len ? below(m->len + 1) : 0, b = o->len ? below(o->len + 1) : 0;
      m->len = a;
      mb_insert(m, a, o->p + b, o->len - b);
      break;
    }
    case 5: { /* insert a chunk of another pool input */
      const input *o = &g.pool[below(g.npool)];
      if(o->len) {
        size_t from = below(o->len), n = 1 + below(o->len - from < 512 ? o->len - from : 512);
        mb_insert(m, m->len ? below(m->len + 1) : 0, o->p + from, n);
      }
      break;
    }
    case 6:
    case 7: mutate_number(m); break;
    case 8: mutate_nesting(m); break;
    case 9: mutate_long_string(m); break;
    case 10: { /* invalid (and valid) UTF-8 and escapes inside a string */
      size_t i = find_from_random(m, "\"");
      const char *s = bad_utf8[below(sizeof(bad_utf8) / sizeof(bad_utf8[0]))];
      mb_insert(m, i < m->len ? i + 1 : m->len, s, strlen(s));
      break;
    }
    case 11:
    case 12: { /* a grammar token */
      const char *s = dict[below(sizeof(dict) / sizeof(dict[0]))];
      mb_insert(m, m->len ? below(m->len + 1) : 0, s, strlen(s));
      break;
    }
    case 13: mutate_duplicate_member(m); break;
    case 14: /* truncate */
      if(m->len)
        m->len = below(m->len + 1);
      break;
    default: { /* replace a string's first character, e.g. a kind or a state */
      size_t i = find_from_random(m, "\"");
      if(i + 1 < m->len)
        m->p[i + 1] = (uint8_t)("tsabldex\"\\"[below(10)]);
      break;
    }
    }
  }
}

/* ---------------------------------------------------------------- corpus and pool */

static int pool_add(const uint8_t *p, size_t n)
{
  if(g.npool >= MAX_POOL || g.pool_bytes + n > POOL_BYTES)
    return -1;
  uint8_t *c = malloc(n ? n : 1);
  if(!c)
    return -1;
  if(n)
    memcpy(c, p, n);
  g.pool[g.npool++] = (input){c, n};
  g.pool_bytes += n;
  return 0;
}

static int read_file(const char *path, input *out)
{
  FILE *f = fopen(path, "rb");
  if(!f)
    return -1;
  uint8_t *p = malloc(MAX_INPUT);
  size_t n = p ? fread(p, 1, MAX_INPUT, f) : 0;
  int err = !p || ferror(f);
  fclose(f);
  if(err) {
    free(p);
    return -1;
  }
  out->p = p;
  out->len = n;
  return 0;
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a file, or every regular file of a directory in name order, to the pool as seeds. */
static int load_corpus(const char *path)
{
  struct stat st;
  if(stat(path, &st)) {
    fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *names[MAX_CORPUS];
  size_t n = 0;
  if(S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if(!d)
      return -1;
    struct dirent *e;
    while((e = readdir(d)) && n < MAX_CORPUS) {
      size_t nl = strlen(e->d_name);
      if(e->d_name[0] == '.' || (nl > 3 && !strcmp(e->d_name + nl - 3, ".md")))
        continue; /* hidden files and notes about the inputs are not inputs */
      size_t len = strlen(path) + strlen(e->d_name) + 2;
      char *full = malloc(len);
      if(!full)
        break;
      snprintf(full, len, "%s/%s", path, e->d_name);
      struct stat fst;
      if(stat(full, &fst) || !S_ISREG(fst.st_mode)) {
        free(full);
        continue;
      }
      names[n++] = full;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_names);
  }
  else {
    names[n] = strdup(path);
    if(!names[n])
      return -1;
    n++;
  }
  int rc = 0;
  for(size_t i = 0; i < n; i++) {
    input in;
    if(read_file(names[i], &in)) {
      fprintf(stderr, "fuzz_replay: cannot read %s\n", names[i]);
      rc = -1;
    }
    else {
      if(pool_add(in.p, in.len))
        rc = -1;
      free(in.p);
    }
    free(names[i]);
  }
  return rc;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long long env_or(const char *name, unsigned long long dflt)
{
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static void usage(void)
{
  fprintf(stderr,
          "usage: fuzz_replay [-n ITERATIONS] [-s SEED] [-t SECONDS] [-o CRASH_DIR] CORPUS...\n"
          "  CORPUS: files or directories; each file is run once, then mutated ITERATIONS times\n"
          "  defaults (or env): FUZZ_ITERATIONS=20000 FUZZ_SEED=1 FUZZ_SECONDS=0 (no limit)\n"
          "  FUZZ_CRASH_DIR=. ; -n 0 only replays the corpus\n");
}

int main(int argc, char **argv)
{
  unsigned long long iterations = env_or("FUZZ_ITERATIONS", 20000);
  unsigned long long seed = env_or("FUZZ_SEED", 1);
  double seconds = (double)env_or("FUZZ_SECONDS", 0);
  const char *crash_dir = getenv("FUZZ_CRASH_DIR") ? getenv("FUZZ_CRASH_DIR") : ".";
  int opt;
  while((opt = getopt(argc, argv, "n:s:t:o:h")) != -1) {
    switch(opt) {
    case 'n': iterations = strtoull(optarg, NULL, 10); break;
    case 's': seed = strtoull(optarg, NULL, 10); break;
    case 't': seconds = strtod(optarg, NULL); break;
    case 'o': crash_dir = optarg; break;
    default: usage(); return opt == 'h' ? 0 : 2;
    }
  }
  if(optind >= argc) {
    usage();
    return 2;
  }
  install_crash_handlers();
  for(int i = optind; i < argc; i++)
    if(load_corpus(argv[i]))
      return 2;
  g.nseeds = g.npool;
  if(!g.npool && pool_add((const uint8_t *)"", 0))
    return 2;

  double t0 = now_s();
  char label[64];
  for(size_t i = 0; i < g.nseeds; i++) {
    snprintf(label, sizeof(label), "seed-%zu", i);
    run_one(g.pool[i].p, g.pool[i].len, crash_dir, label);
  }
  size_t kept = 0;
  unsigned long long done = 0;
  mbuf m = {malloc(MAX_INPUT), 0};
  if(!m.p)
    return 2;
  rng_state = seed;
  for(; done < iterations && !g.stop; done++) {
    if((done & 255) == 0 && seconds > 0 && now_s() - t0 > seconds)
      break;
    if(done && (done & 0x3FFFF) == 0) /* every 262144: a sign of life in long campaigns */
      fprintf(stderr, "fuzz_replay: %llu mutants, %zu signatures, pool %zu, %.0f s\n", done, g.nsigs,
              g.npool, now_s() - t0);
    const input *base = &g.pool[below(g.npool)];
    memcpy(m.p, base->p, base->len);
    m.len = base->len;
    mutate(&m);
    snprintf(label, sizeof(label), "s%llu-i%llu", seed, done);
    run_one(m.p, m.len, crash_dir, label);
    if(g.new_sig && pool_add(m.p, m.len) == 0)
      kept++;
  }
  free(m.p);
  printf("fuzz_replay: %zu corpus inputs, %llu mutants (seed %llu), %zu signatures, %zu kept, "
         "%.1f s\n",
         g.nseeds, done, seed, g.nsigs, kept, now_s() - t0);
  for(size_t i = 0; i < g.npool; i++)
    free(g.pool[i].p);
  return 0;
}
