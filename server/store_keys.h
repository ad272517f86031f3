/* store_keys.h — the tasks table's sort keys of an ended session, stored once they are final
 * (schema 010: task_by_created, _busy, _wait, _duration, task_keys_done), and a page of /tasks
 * read through them: ORDER BY key, id LIMIT/OFFSET over one table, the total a stored count,
 * each row's tree fields from the stored tree. The parameters and the JSON are query.c's; the
 * in-memory order of sessions without current keys is query_page.c's. Part of the store module. */
#ifndef LS_STORE_KEYS_H
#define LS_STORE_KEYS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "store.h"

/* One task of a page: its own fields, its effective parent and depth in the tree, its children's
 * ids in tree order (nchildren of them, in the caller's arena). */
typedef struct store_page_task {
  store_task t;
  int64_t parent, depth;
  const int64_t *children;
  size_t nchildren;
} store_page_task;

/* What the page asks: col one of created, id, busy_ns, wait_ns, duration (docs/api.md "Tables");
 * at > 0: the page of `limit` rows holding task `at` (offset's when the task is not listed). */
typedef struct store_page_ask {
  const char *col;
  int desc;
  int64_t offset, limit, at;
} store_page_ask;

/* The page of session x's tasks through the stored keys: *rows (malloc'd, n of them) from
 * position *from of *total, in the order of query_page_tasks (key, then id ascending).
 * LS_ENOTFOUND when x has no current keys (running, not yet figured, a batch arrived since) or
 * no current stored tree: the caller sorts in memory then. */
int store_keys_page(store_reader *r, const store_session *x, const store_page_ask *q, arena *a,
                    store_page_task **rows, size_t *n, int64_t *total, int64_t *from);

/* 1 when x's keys and stored tree are current (store_keys_page reads them), 0 otherwise. */
int store_keys_current(store_reader *r, const store_session *x);

/* Stores the keys of ended session `id` unless they are current, and makes its stored tree
 * current (rebuilt when tasks were appended to it), through a reader of s's pool in short write
 * transactions: what writer.c's figures thread runs after a large session's end was answered.
 * Gives up between two transactions once *stop is set (the server stops: the keys stay
 * incomplete, not current). 0, LS_ENOTFOUND, LS_ESTOPPED, or an error (logged; the tables then
 * sort in memory). */
int store_keys_prepare(store *s, const char *id, const atomic_int *stop);

#endif
