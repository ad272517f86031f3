/* query_page.c — sorting and paging parameters of the tables (query_page.h): validation with a
 * precise 400 detail, a total order of row indexes, the page's window. Rows are query.c's. */
#include "query_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_MAX 2147483647LL

int query_page_parse(const query_args *a, const char *const *cols, int ncols, int def_col, int def_desc,
                     int64_t def_limit, int64_t max_limit, query_page *out, char *detail, size_t dlen)
{
  const char *sort = query_arg(a, "sort"), *order = query_arg(a, "order");
  const char *offset = query_arg(a, "offset"), *limit = query_arg(a, "limit");
  *out = (query_page){.given = sort || order || offset || limit, .col = def_col, .desc = def_desc, .limit = def_limit};
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
    out->desc = k == def_col ? def_desc : 0;
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
