/* test_parse_pool.c — parse_pool.c: each body's outcome as the status http.c answers (202's
 * batch, 400, 413 before and after gzip, 503 when the budget is spent), every queued job parsed
 * before parse_pool_stop returns, and the budget given back by every path. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check_run.h"
#include "parse_pool.h"

#define VALID "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"events\":[{\"k\":\"lag\",\"t\":1,\"d\":2}]}"

typedef struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int done;
} waiter;

static waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void on_done(parse_job *job, void *arg)
{
  (void)job;
  (void)arg;
  pthread_mutex_lock(&wt.lock);
  wt.done++;
  pthread_cond_broadcast(&wt.cv);
  pthread_mutex_unlock(&wt.lock);
}

static void wait_for(int n)
{
  pthread_mutex_lock(&wt.lock);
  while(wt.done < n)
    pthread_cond_wait(&wt.cv, &wt.lock);
  pthread_mutex_unlock(&wt.lock);
}

static void job_init(parse_job *j, const char *body, size_t len, int gzip)
{
  memset(j, 0, sizeof(*j));
  j->body = body;
  j->len = len;
  j->gzip = gzip;
  j->on_done = on_done;
  j->status = 999;
}

/* gzip of n bytes of '0' (a bomb when n is large): the caller frees it. */
static char *gzip_zeros(size_t n, size_t *outlen)
{
  char *plain = malloc(n);
  ck_assert_ptr_nonnull(plain);
  memset(plain, '0', n);
  z_stream z;
  memset(&z, 0, sizeof(z));
  ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  uLong bound = deflateBound(&z, n);
  char *out = malloc(bound);
  ck_assert_ptr_nonnull(out);
  z.next_in = (Bytef *)plain;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)bound;
  ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
  *outlen = z.total_out;
  deflateEnd(&z);
  free(plain);
  return out;
}

START_TEST(outcomes_as_http_statuses)
{
  membudget mb;
  membudget_init(&mb, 64 << 20);
  parse_limits lim = {.max_body = 1 << 20, .budget = &mb};
  ingest_default_limits(&lim.limits);
  parse_pool *p = NULL;
  ck_assert_int_eq(parse_pool_start(&lim, 2, &p), 0);
  size_t bomb_len;
  char *bomb = gzip_zeros(4 << 20, &bomb_len); /* 4 MiB decoded, over max_body */
  parse_job j[4];
  wt.done = 0;
  job_init(&j[0], VALID, strlen(VALID), 0);
  job_init(&j[1], "{\"v\":1,", 7, 0);
  job_init(&j[2], bomb, bomb_len, 1);
  job_init(&j[3], "not gzip", 8, 1);
  for(int i = 0; i < 4; i++)
    ck_assert_int_eq(parse_pool_submit(p, &j[i]), 0);
  wait_for(4);
  ck_assert_uint_eq(j[0].status, 0);
  ck_assert_ptr_nonnull(j[0].batch);
  ck_assert_uint_eq(j[0].batch->events, 1);
  ingest_free(j[0].batch);
  ck_assert_uint_eq(j[1].status, 400);
  ck_assert_ptr_null(j[1].batch);
  ck_assert_msg(!strncmp(j[1].detail, "body: not valid JSON", 20), "%s", j[1].detail);
  ck_assert_uint_eq(j[2].status, 413);
  ck_assert_str_eq(j[2].detail, "body larger than the limit (--max-body) once decompressed");
  ck_assert_uint_eq(j[3].status, 400);
  ck_assert_msg(!strncmp(j[3].detail, "body: not valid gzip", 20), "%s", j[3].detail);
  ck_assert_int_eq(membudget_used(&mb), 0); /* every path gives the budget back */
  parse_pool_stop(p);
  free(bomb);
}
END_TEST

START_TEST(spent_budget_is_503)
{
  membudget mb;
  membudget_init(&mb, 4096); /* less than one 64 KiB inflate step */
  parse_limits lim = {.max_body = 1 << 20, .budget = &mb};
  ingest_default_limits(&lim.limits);
  size_t len;
  char *gz = gzip_zeros(200000, &len);
  parse_job j;
  job_init(&j, gz, len, 1);
  parse_pool_run(&lim, &j); /* the same work on this thread */
  ck_assert_uint_eq(j.status, 503);
  ck_assert_str_eq(j.detail, PARSE_NO_MEMORY);
  ck_assert_int_eq(membudget_used(&mb), 0);
  free(gz);
}
END_TEST

/* parse_pool_stop parses what is queued first: no job is left without its on_done (http.c
 * waits for every suspended connection to be resumed before it stops the daemon). */
START_TEST(stop_parses_everything_queued)
{
  parse_limits lim = {.max_body = 1 << 20};
  ingest_default_limits(&lim.limits);
  parse_pool *p = NULL;
  ck_assert_int_eq(parse_pool_start(&lim, 1, &p), 0);
  enum { N = 200 };
  static parse_job j[N];
  wt.done = 0;
  for(int i = 0; i < N; i++) {
    job_init(&j[i], VALID, strlen(VALID), 0);
    ck_assert_int_eq(parse_pool_submit(p, &j[i]), 0);
  }
  parse_pool_stop(p);
  ck_assert_int_eq(wt.done, N);
  for(int i = 0; i < N; i++) {
    ck_assert_uint_eq(j[i].status, 0);
    ingest_free(j[i].batch);
  }
}
END_TEST

/* A small plain body is parsed while a large one, queued before it, still is: the pool's thread
 * for small bodies takes it (with one thread taking jobs in order, it waited for the large one). */
static int order[2], norder;

static void on_done_ordered(parse_job *job, void *arg)
{
  (void)job;
  pthread_mutex_lock(&wt.lock);
  order[norder++] = (int)(intptr_t)arg;
  wt.done++;
  pthread_cond_broadcast(&wt.cv);
  pthread_mutex_unlock(&wt.lock);
}

START_TEST(small_body_not_behind_a_large_one)
{
  /* 16 MiB of "0," in an ignored field: seconds of parsing under a sanitizer, ~0.5 s without */
  const char *head = "{\"v\":1,\"batch\":\"b\",\"session\":\"s\",\"events\":[],\"pad\":[";
  size_t zeros = 8u << 20, hl = strlen(head);
  char *big = malloc(hl + 2 * zeros + 2);
  ck_assert_ptr_nonnull(big);
  memcpy(big, head, hl);
  for(size_t i = 0; i < zeros; i++)
    memcpy(big + hl + 2 * i, "0,", 2);
  memcpy(big + hl + 2 * zeros - 1, "]}", 3);
  parse_limits lim = {.max_body = 32u << 20};
  ingest_default_limits(&lim.limits);
  lim.limits.max_tree = (size_t)1 << 30;
  parse_pool *p = NULL;
  ck_assert_int_eq(parse_pool_start(&lim, 1, &p), 0);
  parse_job j[2];
  wt.done = 0;
  norder = 0;
  job_init(&j[0], big, strlen(big), 0); /* 16 MiB, plain: not small */
  j[0].on_done = on_done_ordered;
  j[0].arg = (void *)(intptr_t)1;
  job_init(&j[1], VALID, strlen(VALID), 0);
  j[1].on_done = on_done_ordered;
  j[1].arg = (void *)(intptr_t)2;
  ck_assert_int_eq(parse_pool_submit(p, &j[0]), 0);
  ck_assert_int_eq(parse_pool_submit(p, &j[1]), 0);
  wait_for(2);
  ck_assert_int_eq(order[0], 2); /* the small one first */
  ck_assert_int_eq(order[1], 1);
  ck_assert_uint_eq(j[1].status, 0);
  ck_assert_uint_eq(j[0].status, 0);
  ingest_free(j[0].batch);
  ingest_free(j[1].batch);
  parse_pool_stop(p);
  free(big);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("parse_pool");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, outcomes_as_http_statuses);
  tcase_add_test(tc, spent_budget_is_503);
  tcase_add_test(tc, stop_parses_everything_queued);
  tcase_add_test(tc, small_body_not_behind_a_large_one);
  suite_add_tcase(s, tc);
  return check_run(s);
}
