/* bench/overhead/clockcost.c — what one clock read costs on this machine: clock_gettime
 * (CLOCK_MONOTONIC, the collector's now_ns(), through the vDSO) against the time-stamp counter read
 * ordered (lfence; rdtsc, what a TSC clock would need so that a step's start is not read before the
 * work before it finishes), unordered (rdtsc) and by rdtscp. The collector reads the clock twice a
 * handle and once a task created; whether a clock of its own over the TSC would pay for the proof
 * it needs (never backwards, no drift from CLOCK_MONOTONIC, which loop.time() and the watchdog use)
 * is this program's question. Not a test. x86-64 only.
 *   cc -O2 -o /tmp/clockcost bench/overhead/clockcost.c && /tmp/clockcost [READS]
 * Prints ns a read for each, five rounds (the spread is the machine's noise). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
#if defined(__x86_64__)
  long n = argc > 1 ? atol(argv[1]) : 5000000;
  if (n <= 0) {
    fprintf(stderr, "clockcost: READS must be a positive number\n");
    return 2;
  }
  volatile uint64_t sink = 0; /* keeps every read */
  unsigned aux;
  printf("ns a read (%ld reads each)   clock_gettime  lfence+rdtsc  rdtsc  rdtscp\n", n);
  for (int r = 0; r < 5; r++) {
    uint64_t a = mono_ns();
    for (long i = 0; i < n; i++) sink += mono_ns();
    uint64_t b = mono_ns();
    for (long i = 0; i < n; i++) { __builtin_ia32_lfence(); sink += __builtin_ia32_rdtsc(); }
    uint64_t c = mono_ns();
    for (long i = 0; i < n; i++) sink += __builtin_ia32_rdtsc();
    uint64_t d = mono_ns();
    for (long i = 0; i < n; i++) sink += __builtin_ia32_rdtscp(&aux);
    uint64_t e = mono_ns();
    printf("round %d                      %8.1f  %12.1f  %5.1f  %6.1f\n", r + 1, (double)(b - a) / (double)n,
           (double)(c - b) / (double)n, (double)(d - c) / (double)n, (double)(e - d) / (double)n);
  }
  return 0;
#else
  (void)argc; (void)argv;
  fprintf(stderr, "clockcost: x86-64 only\n");
  return 2;
#endif
}
