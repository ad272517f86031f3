/* store_sites.h — the await sites (schema 13): each distinct (file, line, func, what) of an await
 * stored once in the sites table, awaits rows naming it by id; the writer's memory of the sites it
 * has committed, so a batch's awaits find their ids without a statement. Part of the store module
 * (store_internal.h): only the write connection's thread calls these. */
#ifndef LS_STORE_SITES_H
#define LS_STORE_SITES_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

typedef struct store_sites store_sites;

/* The sites of db (the write connection, its schema at 13 or later): statements prepared, the
 * table's rows counted. 0, or a project code with SQLite's message in err. */
int store_sites_open(sqlite3 *db, store_sites **out, char *err, size_t errlen);
/* Before the connection closes. NULL is fine. */
void store_sites_close(store_sites *x);

/* ids[i] := the site of awaits a[i], i < n: from memory, else found or inserted through db in the
 * caller's transaction (remembered as pending until store_sites_commit). 0 or a project code. */
int store_sites_resolve(store_sites *x, sqlite3 *db, const ingest_await *a, size_t n, int64_t *ids);
/* The transaction committed: what it found or inserted is remembered for good. */
void store_sites_commit(store_sites *x);
/* The transaction rolled back: what was found or inserted since the last commit is forgotten (an
 * inserted row may be gone; one found may be found again by a statement). */
void store_sites_forget(store_sites *x);

/* Sessions' rows were purged since the last sweep (store_maintain.c): a sweep may be due. */
void store_sites_purged(store_sites *x);
/* 1 when sweeping unnamed sites is worth a scan of awaits: rows were purged since the last sweep
 * and more sites were inserted since than were left by it (at least `min`). */
int store_sites_sweep_due(const store_sites *x, int64_t min);
/* Removes every site no awaits row names, in the caller's transaction (no pending sites: call it
 * between transactions of batches); *removed: how many. Memory starts over. 0 or a code. */
int store_sites_sweep(store_sites *x, sqlite3 *db, int64_t *removed);
/* Sites rows as the writer counts them (an estimate: store_sites.c), and entries it remembers. */
int64_t store_sites_rows(const store_sites *x);
size_t store_sites_known(const store_sites *x);
/* Statements run to find or insert sites (store_batch_statements counts them). */
int64_t store_sites_statements(const store_sites *x);

/* Sites remembered at most (each a few dozen bytes and its strings): past it, memory starts over at
 * the next commit. The sweep's default minimum, below which sites are never swept. */
#define STORE_SITES_MAX_KNOWN 65536
#define STORE_SITES_SWEEP_MIN 4096

#endif
