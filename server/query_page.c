/* query_page.c — sorting and paging of the tables (query_page.h): each table's parameters
 * validated with a precise 400 detail, a total order of its row indexes, the page's window.
 * Reading rows and writing JSON are query.c's. */
#include "query_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_MAX 2147483647LL

#define NCOLS_MAX 5

/* Each table's columns (the default first) and limits. */
static const struct {
  const char *cols[NCOLS_MAX];
  int ncols, def_desc;
  int64_t def_limit, max_limit;
} tables[] = {
  [QUERY_PAGE_TASKS] = {{"created", "id", "busy_ns", "wait_ns", "duration"}, 5, 0, 100, 10000},
  [QUERY_PAGE_AWAITS] = {{"d", "t", "task"}, 3, 1, 1000, 100000},
  [QUERY_PAGE_BLOCKS] = {{"t", "d", "task"}, 3, 0, 100, 10000},
};
enum { TASK_CREATED, TASK_ID, TASK_BUSY, TASK_WAIT, TASK_DURATION };

int query_page_parse(const query_args *a, query_page_table table, query_page *out, char *detail, size_t dlen)
{
  const char *const *cols = tables[table].cols;
  int ncols = tables[table].ncols;
  int64_t max_limit = tables[table].max_limit;
  const char *sort = query_arg(a, "sort"), *order = query_arg(a, "order");
  const char *offset = query_arg(a, "offset"), *limit = query_arg(a, "limit");
  *out = (query_page){.given = sort || order || offset || limit, .desc = tables[table].def_desc,
                      .limit = tables[table].def_limit};
  if(sort) {
    int k = 0;
    while(k < ncols && strcmp(sort, cols[k]))
      k++;
    if(k == ncols) {
      char names[256] = "";
      for(int i = 0; i < ncols; i++)
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "", cols[i]);
      snprintf(detail, dlen, "sort: expected one of %s", names);
      return LS_EINVAL;
    }
    out->col = k;
    out->desc = k == 0 ? tables[table].def_desc : 0;
  }
  if(order) {
    if(!strcmp(order, "asc"))
      out->desc = 0;
    else if(!strcmp(order, "desc"))
      out->desc = 1;
    else
      return query_invalid(detail, dlen, "order: expected asc or desc");
  }
  if(offset && query_parse_i64(offset, 0, OFFSET_MAX, &out->offset))
    return query_invalid(detail, dlen, "offset: expected an integer in [0, 2147483647]");
  if(limit && query_parse_i64(limit, 1, max_limit, &out->limit)) {
    snprintf(detail, dlen, "limit: expected an integer in [1, %lld]", (long long)max_limit);
    return LS_EINVAL;
  }
  return 0;
}

const char *query_page_col(query_page_table table, int col)
{
  return col >= 0 && col < tables[table].ncols ? tables[table].cols[col] : NULL;
}

typedef struct keyed {
  int64_t key, tie;
  size_t i;
} keyed;

static int cmp_asc(const void *a, const void *b)
{
  const keyed *x = a, *y = b;
  if(x->key != y->key)
    return x->key < y->key ? -1 : 1;
  if(x->tie != y->tie)
    return x->tie < y->tie ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int cmp_desc(const void *a, const void *b)
{
  const keyed *x = a, *y = b;
  if(x->key != y->key)
    return x->key > y->key ? -1 : 1;
  if(x->tie != y->tie)
    return x->tie < y->tie ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

int query_page_order(const int64_t *key, const int64_t *tie, size_t n, int desc, size_t **idx)
{
  *idx = NULL;
  keyed *k = malloc((n ? n : 1) * sizeof(*k));
  size_t *out = malloc((n ? n : 1) * sizeof(*out));
  if(!k || !out) {
    free(k);
    free(out);
    return LS_ENOMEM;
  }
  for(size_t i = 0; i < n; i++)
    k[i] = (keyed){key[i], tie ? tie[i] : 0, i};
  qsort(k, n, sizeof(*k), desc ? cmp_desc : cmp_asc);
  for(size_t i = 0; i < n; i++)
    out[i] = k[i].i;
  free(k);
  *idx = out;
  return 0;
}

void query_page_window(const query_page *p, size_t n, size_t at_pos, size_t *from, size_t *to)
{
  size_t f = (uint64_t)p->offset < n ? (size_t)p->offset : n;
  if(p->at > 0 && at_pos < n)
    f = at_pos / (size_t)p->limit * (size_t)p->limit;
  size_t room = n - f;
  *from = f;
  *to = f + ((uint64_t)p->limit < room ? (size_t)p->limit : room);
}

/* The key and tie arrays of n rows (freed by order_keys): 0 or LS_ENOMEM. */
static int alloc_keys(size_t n, int64_t **key, int64_t **tie)
{
  *key = malloc((n ? n : 1) * sizeof(**key));
  *tie = malloc((n ? n : 1) * sizeof(**tie));
  return *key && *tie ? 0 : LS_ENOMEM;
}

/* Orders the rows by the filled keys (rc: alloc_keys's) and frees the arrays. */
static int order_keys(int rc, int64_t *key, int64_t *tie, size_t n, int desc, size_t **order)
{
  if(!rc)
    rc = query_page_order(key, tie, n, desc, order);
  free(key);
  free(tie);
  return rc;
}

int query_page_tasks(const store_task *t, size_t n, const query_page *p, int64_t session_end, size_t **order)
{
  int64_t *key, *tie;
  int rc = alloc_keys(n, &key, &tie);
  for(size_t i = 0; !rc && i < n; i++) {
    const store_task *x = &t[i];
    int64_t end = x->ended >= 0 ? x->ended : session_end;
    tie[i] = x->id;
    switch(p->col) {
    case TASK_ID: key[i] = x->id; break;
    case TASK_BUSY: key[i] = x->busy_ns; break;
    case TASK_WAIT: key[i] = x->wait_ns; break;
    case TASK_DURATION: key[i] = end - x->created; break;
    default: key[i] = x->created; break;
    }
  }
  return order_keys(rc, key, tie, n, p->desc, order);
}

int query_page_awaits(const store_await *w, size_t n, const query_page *p, size_t **order)
{
  int64_t *key, *tie;
  int rc = alloc_keys(n, &key, &tie);
  for(size_t i = 0; !rc && i < n; i++) {
    key[i] = p->col == 0 ? w[i].d : p->col == 1 ? w[i].t : w[i].task;
    tie[i] = p->col == 1 ? w[i].task : w[i].t;
  }
  return order_keys(rc, key, tie, n, p->desc, order);
}

int query_page_blocks(const store_block *b, size_t n, const query_page *p, size_t **order)
{
  int64_t *key, *tie;
  int rc = alloc_keys(n, &key, &tie);
  for(size_t i = 0; !rc && i < n; i++) {
    key[i] = p->col == 0 ? b[i].t : p->col == 1 ? b[i].d : b[i].task;
    tie[i] = b[i].t;
  }
  return order_keys(rc, key, tie, n, p->desc, order);
}
