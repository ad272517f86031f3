/* store_rows.h — the task tree stored as rows (schema task_rows): building it for a session when
 * it is stale, and the indexed reads a window of lanes needs (by position, by task id). Which
 * rows a collapsed set hides and the JSON are query_rows.c's. Part of the store module. */
#ifndef LS_STORE_ROWS_H
#define LS_STORE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "store.h"

/* One task as a row of the tree: its place (pos, 0-based, depth-first order), shape and the
 * task's own fields (-1: unknown, NULL: none). */
typedef struct store_row {
  int64_t pos, id, parent, depth, children, size;
  int64_t created, first_run, ended, busy_ns, wait_ns, status;
  const char *name, *coro, *state, *exc;
} store_row;

/* A tree that could not be stored, held in memory for one request (store_rows_ensure). Building
 * it takes ~90 bytes a task for the moment (the ordering's input and the shape), one build at a
 * time in the process, so a request's is bounded at STORE_TREE_MEM_MAX tasks (~90 MB). */
#define STORE_TREE_MEM_MAX ((size_t)1000000)
typedef struct store_tree store_tree;
void store_tree_free(store_tree *t);

/* Makes session sid's stored tree current. When it is stale this ends r's read transaction,
 * orders the tasks of a new read snapshot and writes the tree in short write transactions on
 * r's connection (each waiting for the writer as the writer would wait for it, none holding the
 * lock for long), and opens a new read transaction, so everything r read before is from an older
 * snapshot. One build at a time per process; a concurrent request waits for it. *built = 1 when
 * it built. *rows = the tree's row count. Tasks that arrived during the build are not in it:
 * the tree is left marked stale and the next query builds again. When the storage refuses the
 * tree's writes (read-only or full database, the lock held elsewhere past the busy timeout) the
 * tree ordered for it is handed back in *mem instead (the caller frees it) and the reads below
 * take it; else *mem = NULL and they read the stored tree. A tree in memory holds up to mem_max
 * tasks (STORE_TREE_MEM_MAX for a request): a larger session is LS_EBUSY then (503 +
 * Retry-After). */
int store_rows_ensure(store_reader *r, int64_t sid, size_t mem_max, int *built, int64_t *rows, store_tree **mem);

/* 1 when session sid's stored tree is current (a /rows reads it without building it first: what
 * http.c asks to decide whether a /rows runs off the HTTP threads); 0 otherwise or on error. */
int store_rows_current(store_reader *r, int64_t sid);

/* The reads: mem, the tree store_rows_ensure kept in memory, or NULL for the stored one. */
/* The row of task id: pos, size, depth and parent filled (the task's own fields are not read).
 * LS_ENOTFOUND when the tree has no such task. */
int store_rows_find(store_reader *r, int64_t sid, const store_tree *mem, int64_t id, store_row *out);

/* The rows of tasks ids[0..n) (one statement for all): out[i].id = 0 when ids[i] is not in
 * the tree, else as store_rows_find fills it. */
int store_rows_find_many(store_reader *r, int64_t sid, const store_tree *mem, const int64_t *ids, size_t n,
                         store_row *out);

/* Rows with lo <= pos < hi, by pos, at most max of them, written to out (strings in a). */
int store_rows_scan(store_reader *r, int64_t sid, const store_tree *mem, int64_t lo, int64_t hi, size_t max,
                    arena *a, store_row *out, size_t *n);

#endif
