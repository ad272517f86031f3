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

/* The example batch of DESIGN.md ("Ingest contract, version 1"), which the query and routes
 * targets seed their stores with: one text for both. */
#define FUZZ_DESIGN_BATCH \
  "{\"v\":1,\"batch\":\"b-4711-000042\",\"session\":\"s-9f1c2e\"," \
  "\"meta\":{\"name\":\"GET /users/42\",\"service\":\"shop\",\"pid\":4711,\"host\":\"dev1\"," \
  "\"python\":\"3.11.7\",\"started_unix_ns\":\"1764089000123456789\"},\"events\":[" \
  "{\"k\":\"task\",\"id\":1,\"parent\":0,\"name\":\"Task-1\",\"coro\":\"app.views.user_page\",\"t\":0}," \
  "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"Task-2\",\"coro\":\"app.db.fetch_user\",\"t\":120000}," \
  "{\"k\":\"step\",\"id\":2,\"t\":130000,\"d\":52000}," \
  "{\"k\":\"await\",\"id\":2,\"t\":182000,\"d\":45000000,\"what\":\"AsyncSession.execute\"," \
  "\"file\":\"app/db.py\",\"line\":23,\"func\":\"fetch_user\"}," \
  "{\"k\":\"block\",\"id\":1,\"t\":50000000,\"d\":150000000,\"stack\":[{\"file\":\"app/views.py\"," \
  "\"line\":45,\"func\":\"user_page\",\"src\":\"time.sleep(0.15)\"}]}," \
  "{\"k\":\"lag\",\"t\":60000000,\"d\":2300000}," \
  "{\"k\":\"done\",\"id\":2,\"t\":95000000,\"state\":\"ok\"}," \
  "{\"k\":\"drop\",\"n\":12},{\"k\":\"end\",\"t\":250000000}]}"

#endif
