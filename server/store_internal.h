/* store_internal.h — what the store module's files (store.c, store_read.c, store_outbox.c) share
 * and no one else sees: the read connection's struct (the outbox's own connection reads through
 * the same typed loaders) and the SQLite helpers. sqlite3.h stays inside the module. */
#ifndef LS_STORE_INTERNAL_H
#define LS_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define STORE_READ_STATEMENTS 24 /* at least store_read.c's R_COUNT (checked there) */

struct store_reader {
  sqlite3 *db;
  sqlite3_stmt *st[STORE_READ_STATEMENTS]; /* prepared on first use */
  int in_use;
};

/* An SQLite result code as the project's (0, LS_EBUSY, LS_ENOMEM, LS_ETOOBIG, LS_EIO). */
int store_code_of(int sqlite_rc);
/* sqlite3_exec: 0 or a project code, with SQLite's message in err when err is not NULL. */
int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* One more connection to s's database, with s's busy timeout and extended result codes. */
int store_open_conn(store *s, sqlite3 **out, char *err, size_t errlen);
/* Finalizes the statements r prepared (its connection stays open). */
void store_reader_finalize(store_reader *r);

#endif
