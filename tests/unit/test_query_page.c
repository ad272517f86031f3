/* test_query_page.c — Check suite for server/query_page.c: each table's sort/order/offset/limit
 * parsing (defaults, the 400 detail naming the parameter), the total order of rows (ties by the
 * tie key, then by index, both directions), and the page's window (offset, at, past the end). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query_page.h"
#include "check_run.h"

/* A query string as name=value pairs. */
typedef struct kv { const char *k, *v; } kv;

static const char *get(void *ctx, const char *name)
{
  for(const kv *p = ctx; p->k; p++)
    if(!strcmp(p->k, name))
      return p->v;
  return NULL;
}

static int parse(query_page_table t, kv *q, query_page *pg, char *detail)
{
  query_args a = {get, q};
  return query_page_parse(&a, t, pg, detail, 256);
}

START_TEST(defaults_per_table) {
  kv none[] = {{NULL, NULL}};
  query_page pg;
  char d[256];
  ck_assert_int_eq(parse(QUERY_PAGE_TASKS, none, &pg, d), 0);
  ck_assert_int_eq(pg.given, 0);
  ck_assert_int_eq(pg.col, 0);
  ck_assert_int_eq(pg.desc, 0);
  ck_assert_int_eq(pg.limit, 100);
  ck_assert_int_eq(parse(QUERY_PAGE_AWAITS, none, &pg, d), 0);
  ck_assert_int_eq(pg.desc, 1); /* longest first */
  ck_assert_int_eq(pg.limit, 1000);
  kv t[] = {{"sort", "t"}, {NULL, NULL}};
  ck_assert_int_eq(parse(QUERY_PAGE_AWAITS, t, &pg, d), 0);
  ck_assert_int_eq(pg.col, 1);
  ck_assert_int_eq(pg.desc, 0); /* another column: ascending unless asked */
  ck_assert_int_eq(pg.given, 1);
  kv lim[] = {{"limit", "7"}, {"offset", "3"}, {"order", "desc"}, {"sort", "task"}, {NULL, NULL}};
  ck_assert_int_eq(parse(QUERY_PAGE_BLOCKS, lim, &pg, d), 0);
  ck_assert_int_eq(pg.limit, 7);
  ck_assert_int_eq(pg.offset, 3);
  ck_assert_int_eq(pg.desc, 1);
  ck_assert_int_eq(pg.col, 2);
}
END_TEST

START_TEST(bad_values_name_the_parameter) {
  static const struct { query_page_table t; const char *k, *v, *detail; } cases[] = {
    {QUERY_PAGE_TASKS, "sort", "name", "sort: expected one of created, id, busy_ns, wait_ns, duration"},
    {QUERY_PAGE_AWAITS, "sort", "", "sort: expected one of d, t, task"},
    {QUERY_PAGE_BLOCKS, "order", "DESC", "order: expected asc or desc"},
    {QUERY_PAGE_TASKS, "offset", "-1", "offset: expected an integer in [0, 2147483647]"},
    {QUERY_PAGE_TASKS, "offset", "2147483648", "offset: expected an integer in [0, 2147483647]"},
    {QUERY_PAGE_TASKS, "limit", "10001", "limit: expected an integer in [1, 10000]"},
    {QUERY_PAGE_AWAITS, "limit", "0", "limit: expected an integer in [1, 100000]"},
    {QUERY_PAGE_BLOCKS, "limit", "1e3", "limit: expected an integer in [1, 10000]"},
  };
  for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kv q[] = {{cases[i].k, cases[i].v}, {NULL, NULL}};
    query_page pg;
    char d[256] = "";
    ck_assert_int_eq(parse(cases[i].t, q, &pg, d), LS_EINVAL);
    ck_assert_str_eq(d, cases[i].detail);
  }
}
END_TEST

START_TEST(order_is_total_both_ways) {
  const int64_t key[] = {5, 1, 5, 3, 5, 1};
  const int64_t tie[] = {2, 9, 1, 0, 1, 9};
  size_t *idx = NULL;
  ck_assert_int_eq(query_page_order(key, tie, 6, 0, &idx), 0);
  const size_t asc[] = {1, 5, 3, 2, 4, 0}; /* equal key and tie: by index */
  for(int i = 0; i < 6; i++)
    ck_assert_uint_eq(idx[i], asc[i]);
  free(idx);
  ck_assert_int_eq(query_page_order(key, tie, 6, 1, &idx), 0);
  const size_t desc[] = {2, 4, 0, 3, 1, 5}; /* ties stay ascending */
  for(int i = 0; i < 6; i++)
    ck_assert_uint_eq(idx[i], desc[i]);
  free(idx);
  ck_assert_int_eq(query_page_order(NULL, NULL, 0, 0, &idx), 0);
  free(idx);
}
END_TEST

START_TEST(tasks_by_duration_count_running_to_the_end) {
  store_task t[3] = {
    {.id = 1, .created = 0, .ended = 50},   /* 50 */
    {.id = 2, .created = 10, .ended = -1},  /* running: 100 - 10 = 90 */
    {.id = 3, .created = 20, .ended = 110}, /* 90, after id 2 */
  };
  query_page pg = {.given = 1, .col = 4, .desc = 1, .limit = 10};
  size_t *idx = NULL;
  ck_assert_int_eq(query_page_tasks(t, 3, &pg, 100, &idx), 0);
  ck_assert_uint_eq(idx[0], 1);
  ck_assert_uint_eq(idx[1], 2);
  ck_assert_uint_eq(idx[2], 0);
  free(idx);
}
END_TEST

START_TEST(window_offset_at_and_past_the_end) {
  query_page pg = {.given = 1, .offset = 20, .limit = 10};
  size_t from, to;
  query_page_window(&pg, 57, 57, &from, &to);
  ck_assert_uint_eq(from, 20);
  ck_assert_uint_eq(to, 30);
  pg.offset = 50;
  query_page_window(&pg, 57, 57, &from, &to);
  ck_assert_uint_eq(to - from, 7);
  pg.offset = 1000;
  query_page_window(&pg, 57, 57, &from, &to);
  ck_assert_uint_eq(from, 57);
  ck_assert_uint_eq(to, 57);
  pg.at = 5; /* the row at position 33 is on the page [30, 40) */
  query_page_window(&pg, 57, 33, &from, &to);
  ck_assert_uint_eq(from, 30);
  ck_assert_uint_eq(to, 40);
  query_page_window(&pg, 57, 57, &from, &to); /* not found: offset's page */
  ck_assert_uint_eq(from, 57);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("query_page");
  TCase *c = tcase_create("query_page");
  tcase_add_test(c, defaults_per_table);
  tcase_add_test(c, bad_values_name_the_parameter);
  tcase_add_test(c, order_is_total_both_ways);
  tcase_add_test(c, tasks_by_duration_count_running_to_the_end);
  tcase_add_test(c, window_offset_at_and_past_the_end);
  suite_add_tcase(s, c);
  return check_run(s);
}
