/* memlat.c — this machine's load latency by working-set size: a pointer chase through a random
 * cyclic permutation of cache lines (each load's address is the previous load's value, so no two
 * overlap and the prefetchers cannot guess the next line), timed for sets from 8 KiB to 64 MiB.
 * It prints ns and cycles (at the clock rate measured against a dependent add chain) per load: the
 * price of an L1 hit, an L2 hit (an L1 miss), an L3 hit and memory (an L2 miss), which
 * cgcost.py uses to turn callgrind's simulated cache misses into time. A figure, not a test.
 *
 *     cc -O2 -o /tmp/memlat bench/overhead/memlat.c && /tmp/memlat [--pin CPU]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE 64

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* ns per dependent load over a set of bytes: the median of 5 timed passes of n loads. */
static double chase(size_t bytes, long n) {
  size_t lines = bytes / LINE;
  char *buf = aligned_alloc(4096, lines * LINE);
  size_t *order = malloc(lines * sizeof *order);
  if (!buf || !order) { fprintf(stderr, "memlat: out of memory at %zu bytes\n", bytes); exit(1); }
  for (size_t i = 0; i < lines; i++) order[i] = i;
  for (size_t i = lines - 1; i > 0; i--) { /* Fisher-Yates: one cycle through every line */
    size_t j = (size_t)(xorshift() % (i + 1));
    size_t t = order[i]; order[i] = order[j]; order[j] = t;
  }
  for (size_t i = 0; i < lines; i++)
    *(void **)(buf + order[i] * LINE) = buf + order[(i + 1) % lines] * LINE;
  free(order);
  void **p = (void **)buf;
  for (long i = 0; i < (long)lines * 2; i++) p = (void **)*p; /* warm: the set in the caches it fits */
  double best[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now_s();
    for (long i = 0; i < n; i++) p = (void **)*p;
    best[r] = (now_s() - t0) / (double)n * 1e9;
  }
  if (!p) puts(""); /* keeps the chase */
  free(buf);
  for (int i = 0; i < 5; i++) /* median of 5 */
    for (int j = i + 1; j < 5; j++)
      if (best[j] < best[i]) { double t = best[i]; best[i] = best[j]; best[j] = t; }
  return best[2];
}

/* The clock rate in GHz: a chain of dependent adds runs one a cycle. */
static double ghz(void) {
  volatile uint64_t sink;
  uint64_t x = 1;
  long n = 1600000000;
  double t0 = now_s();
  /* eight adds in one chain per iteration: the loop's own counter runs beside them */
  for (long i = 0; i < n; i += 8)
    __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  double s = now_s() - t0;
  sink = x;
  (void)sink;
  return (double)n / s * 1e-9;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--pin") == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[2]), &set);
    if (sched_setaffinity(0, sizeof set, &set)) perror("memlat: sched_setaffinity");
  } else if (argc != 1) {
    fprintf(stderr, "usage: memlat [--pin CPU]\n");
    return 2;
  }
  double g = ghz();
  printf("clock: %.2f GHz (a dependent add a cycle)\n", g);
  printf("%10s %8s %8s\n", "set", "ns/load", "cycles");
  for (size_t kb = 8; kb <= 65536; kb *= 2) {
    double ns = chase(kb * 1024, kb <= 1024 ? 20000000 : 4000000);
    printf("%7zu KiB %8.2f %8.1f\n", kb, ns, ns * g);
  }
  return 0;
}
