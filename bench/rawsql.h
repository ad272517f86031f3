/* rawsql.h — the baseline of the ingest benchmark: insert a batch's rows straight into a fresh
 * SQLite file made from schema/schema.sql, one prepared statement per table (and event kind),
 * one transaction per batch, WAL with synchronous=NORMAL — what storage alone costs. */
#ifndef BENCH_RAWSQL_H
#define BENCH_RAWSQL_H

#include "gen.h"

typedef struct rawsql rawsql;

/* Creates db_path from the schema file's text; NULL with a message in err on failure. */
rawsql *rawsql_open(const char *db_path, const char *schema_path, char *err, size_t errlen);
/* Stores one batch in one transaction; 0 or -1 (message in err). */
int rawsql_put(rawsql *r, const gen_batch *b, char *err, size_t errlen);
void rawsql_close(rawsql *r);

#endif
