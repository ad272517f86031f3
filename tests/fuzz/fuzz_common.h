/* fuzz_common.h — what the fuzz targets share: the libFuzzer entry point's prototype, the
 * invariant check that aborts (so every driver reports it as a crash with the input), and the
 * optional feedback hook that replay_main.c provides and libFuzzer/AFL++ leave undefined. */
#ifndef LS_FUZZ_COMMON_H
#define LS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Called by a target with a short text naming which path an input took (e.g. the rule that
 * rejected it); replay_main.c keeps inputs that produce a signature it has not seen. Weak: under
 * libFuzzer or AFL++ it is absent (NULL) and targets skip it. */
void fuzz_feedback(const char *signature) __attribute__((weak));

/* An invariant of the code under test: on violation, say which and abort. */
#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if(!(cond)) {                                                                                  \
      fprintf(stderr, "fuzz: invariant failed at %s:%d: ", __FILE__, __LINE__);                    \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      abort();                                                                                     \
    }                                                                                              \
  } while(0)

#endif
