/* bench/overhead/xcore.c — what a line of memory costs the loop thread when another core touched
 * it last. The collector's loop thread writes each request's records into a chunk and its session
 * into a session struct, both taken from spares that the sender thread (on the other core) read
 * and freed; with the sender busy beside the loop (a long run), those lines may still sit in the
 * sender's cache. This times the writer's side of that, per 64-byte line, four ways:
 *
 *   own-warm     lines this thread wrote a moment ago (in its L1/L2)
 *   own-cold     lines this thread wrote long ago, pushed out since by a pass over the pool
 *   other-read   lines this thread wrote, that the other thread has read since (shared copies)
 *   other-wrote  lines the other thread wrote since (its modified copies)
 *
 * Each way: a pool of 4,096 buffers of 24 lines (6 MiB, past the L2, inside the L3); per buffer
 * the writer writes the first WRITE_LINES lines, as a request's records and session fill a chunk
 * and a session. The other thread works a batch of buffers ahead of the writer, as the sender
 * frees what the loop takes next. Prints ns per buffer and per line, the median of ROUNDS rounds.
 * A figure, not a test.
 *     cc -O2 -pthread -o /tmp/xcore bench/overhead/xcore.c && /tmp/xcore [ROUNDS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE 64
#define BUF_LINES 24
#define NBUF 4096
#define BATCH 64
#define WRITE_LINES 16

enum { OWN_WARM, OWN_COLD, OTHER_READ, OTHER_WROTE, NWAYS };
static const char *const way_name[NWAYS] = {"own-warm", "own-cold", "other-read", "other-wrote"};

static unsigned char *pool;
static _Atomic long ready_upto; /* buffers the other thread has finished with */
static _Atomic long taken_upto; /* buffers the writer has written: the other stays AHEAD batches ahead */
#define AHEAD 4
static _Atomic int way_go = -1;  /* the way the other thread works next; -1 idle, -2 stop */
static volatile uint64_t sink;

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if(pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
    fprintf(stderr, "xcore: cannot pin to CPU %d (figures still printed)\n", cpu);
}

static unsigned char *buf(long i) { return pool + (size_t)i * BUF_LINES * LINE; }

/* The other thread: for OTHER_READ it reads every line of each buffer, for OTHER_WROTE it writes
 * them, a batch at a time, publishing how far it got. */
static void *other(void *arg)
{
  (void)arg;
  pin(1);
  for(;;) {
    int w;
    while((w = atomic_load(&way_go)) == -1)
      ;
    if(w == -2)
      return NULL;
    uint64_t acc = 0;
    for(long i = 0; i < NBUF; i++) {
      if(i % BATCH == 0)
        while(i - atomic_load_explicit(&taken_upto, memory_order_acquire) >= AHEAD * BATCH)
          ;
      unsigned char *b = buf(i);
      for(int l = 0; l < BUF_LINES; l++) {
        if(w == OTHER_WROTE)
          b[l * LINE] = (unsigned char)i;
        else
          acc += b[l * LINE];
      }
      if((i + 1) % BATCH == 0)
        atomic_store_explicit(&ready_upto, i + 1, memory_order_release);
    }
    sink += acc;
    atomic_store(&way_go, -1);
  }
}

/* One pass of the writer over the pool, each buffer's first WRITE_LINES lines written whole
 * (memset: the records and the session struct are written, not read); ns per buffer, counting
 * the writing only (with follow, a batch is timed once the other thread has finished it). */
static double writer_pass(int follow)
{
  uint64_t spent = 0;
  for(long i = 0; i < NBUF; i += BATCH) {
    if(follow)
      while(atomic_load_explicit(&ready_upto, memory_order_acquire) < i + BATCH)
        ;
    uint64_t t0 = now_ns();
    for(long k = i; k < i + BATCH; k++)
      memset(buf(k), (int)(k & 0xff), WRITE_LINES * LINE);
    spent += now_ns() - t0;
    atomic_store_explicit(&taken_upto, i + BATCH, memory_order_release);
  }
  return (double)spent / NBUF;
}

static void flush_pool(void)
{
  /* a pass over 4x the pool pushes its lines out of this core's L1 and L2 */
  size_t n = (size_t)NBUF * BUF_LINES * LINE * 4;
  unsigned char *junk = malloc(n);
  if(!junk)
    return;
  memset(junk, 1, n);
  sink += junk[n / 2];
  free(junk);
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  int rounds = argc > 1 ? atoi(argv[1]) : 15;
  if(rounds < 1 || rounds > 1000) {
    fprintf(stderr, "usage: xcore [ROUNDS 1..1000]\n");
    return 2;
  }
  pool = aligned_alloc(4096, (size_t)NBUF * BUF_LINES * LINE);
  double *t = calloc((size_t)rounds * NWAYS, sizeof(*t));
  if(!pool || !t) {
    fprintf(stderr, "xcore: out of memory\n");
    return 1;
  }
  memset(pool, 0, (size_t)NBUF * BUF_LINES * LINE);
  pthread_t th;
  if(pthread_create(&th, NULL, other, NULL)) {
    fprintf(stderr, "xcore: cannot start a thread\n");
    return 1;
  }
  pin(0);
  for(int r = 0; r < rounds; r++) {
    for(int w = 0; w < NWAYS; w++) {
      writer_pass(0); /* the writer wrote every buffer last */
      if(w == OWN_WARM) {
        /* only the last buffers still sit in the L2: time the last 1/16 of the pool again */
        uint64_t t0 = now_ns();
        for(long i = NBUF - NBUF / 16; i < NBUF; i++)
          memset(buf(i), (int)(i & 0xff), WRITE_LINES * LINE);
        t[r * NWAYS + w] = (double)(now_ns() - t0) / (NBUF / 16);
        continue;
      }
      if(w == OWN_COLD) {
        flush_pool();
        t[r * NWAYS + w] = writer_pass(0);
        continue;
      }
      flush_pool();
      atomic_store(&ready_upto, 0);
      atomic_store(&taken_upto, 0);
      atomic_store(&way_go, w);
      t[r * NWAYS + w] = writer_pass(1);
      while(atomic_load(&way_go) != -1)
        ;
    }
  }
  atomic_store(&way_go, -2);
  pthread_join(th, NULL);
  printf("%d rounds; a buffer: %d lines written of %d; pool %d buffers (%d KiB)\n", rounds, WRITE_LINES,
         BUF_LINES, NBUF, NBUF * BUF_LINES * LINE / 1024);
  double *v = malloc((size_t)rounds * sizeof(*v));
  if(!v)
    return 1;
  for(int w = 0; w < NWAYS; w++) {
    for(int r = 0; r < rounds; r++)
      v[r] = t[r * NWAYS + w];
    qsort(v, (size_t)rounds, sizeof(*v), cmp_d);
    double med = v[rounds / 2];
    printf("%-12s %8.1f ns a buffer  %6.2f ns a line  (min %.1f, max %.1f)\n", way_name[w], med, med / WRITE_LINES,
           v[0], v[rounds - 1]);
  }
  free(v);
  free(t);
  free(pool);
  return 0;
}
