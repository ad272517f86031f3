/* query_page.h — server-side sorting and paging of the tables (tasks, awaits, blocks): the
 * sort/order/offset/limit parameters and an ordering of row indexes. The rows and their JSON
 * stay query.c's; this file knows only columns as int64 keys. */
#ifndef LS_QUERY_PAGE_H
#define LS_QUERY_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "query.h"

/* What a table request asked for. `given` is 0 when none of the four parameters came: the
 * handler then answers as it always has (its own order, its own limit). */
typedef struct query_page {
  int given;
  int col;         /* index into the table's column names */
  int desc;        /* order=desc */
  int64_t offset;  /* rows skipped */
  int64_t limit;   /* rows at most */
  int64_t at;      /* > 0: the page holding the row of this id instead of offset's (tasks) */
} query_page;

/* Parses sort (one of cols[0..ncols), default cols[def_col]), order (asc|desc, default: desc for
 * the default column when def_desc, else asc), offset in [0, 2^31) (default 0), limit in
 * [1, max_limit] (default def_limit). LS_EINVAL with the parameter named in detail. */
int query_page_parse(const query_args *a, const char *const *cols, int ncols, int def_col, int def_desc,
                     int64_t def_limit, int64_t max_limit, query_page *out, char *detail, size_t dlen);

/* Orders idx (n row indexes, malloc'd by the callee: free it) by key[i] (ascending, or
 * descending with desc), equal keys by tie[i] ascending, then by index: a total order, so pages
 * never repeat or skip a row. 0 or LS_ENOMEM. */
int query_page_order(const int64_t *key, const int64_t *tie, size_t n, int desc, size_t **idx);

/* The rows [*from, *to) of n that the page shows: from offset, or with p->at the page (of
 * p->limit rows, counted from 0) holding the row at position at_pos (n or more: not found, offset
 * then). */
void query_page_window(const query_page *p, size_t n, size_t at_pos, size_t *from, size_t *to);

#endif
