/* query_page.h — server-side sorting and paging of the tables (tasks, awaits, blocks): the
 * sort/order/offset/limit parameters of each table, and its rows' order for a page. Reading the
 * rows and writing their JSON stay query.c's. */
#ifndef LS_QUERY_PAGE_H
#define LS_QUERY_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "query.h"
#include "store.h"

/* The tables that page, each with its columns, default sort and limits (docs/api.md, "Tables"). */
typedef enum { QUERY_PAGE_TASKS, QUERY_PAGE_AWAITS, QUERY_PAGE_BLOCKS } query_page_table;

/* What a table request asked for. `given` is 0 when none of sort, order, offset, limit came:
 * /tasks and /blocks then answer as they always have (every row, their own order). */
typedef struct query_page {
  int given;
  int col;         /* index into the table's column names */
  int desc;        /* order=desc */
  int64_t offset;  /* rows skipped */
  int64_t limit;   /* rows at most */
  int64_t at;      /* > 0: the page holding the row of this id instead of offset's (tasks) */
} query_page;

/* Parses sort (one of the table's columns), order (asc|desc; default desc for the default column
 * of awaits, d, else asc), offset in [0, 2^31), limit in [1, the table's maximum]. LS_EINVAL
 * with the parameter named in detail. */
int query_page_parse(const query_args *a, query_page_table table, query_page *out, char *detail, size_t dlen);

/* The page's order of each table's n rows: *order (malloc'd: free it) lists row indexes, equal
 * keys by task id (tasks) or t (awaits, blocks; awaits by t: by task), then by index — a total
 * order, so pages never repeat or skip a row. A running task's duration runs to session_end,
 * as the page shows it. 0 or LS_ENOMEM. */
int query_page_tasks(const store_task *t, size_t n, const query_page *p, int64_t session_end, size_t **order);
int query_page_awaits(const store_await *w, size_t n, const query_page *p, size_t **order);
int query_page_blocks(const store_block *b, size_t n, const query_page *p, size_t **order);

/* The name of column col of table (its sort= value). */
const char *query_page_col(query_page_table table, int col);

/* Orders n rows by key[i] (ascending, or descending with desc), then tie[i] ascending, then
 * index: *idx malloc'd. 0 or LS_ENOMEM. */
int query_page_order(const int64_t *key, const int64_t *tie, size_t n, int desc, size_t **idx);

/* The rows [*from, *to) of n that the page shows: from offset, or with p->at the page (of
 * p->limit rows, counted from 0) holding the row at position at_pos (n or more: not found,
 * offset's then). */
void query_page_window(const query_page *p, size_t n, size_t at_pos, size_t *from, size_t *to);

#endif
