/* store_sites.c — the await sites table and the writer's memory of it (store_sites.h).
 *
 * Memory: a chained hash table of the sites the write connection found or inserted. Entries sit
 * in one array in the order they were added, the committed ones first ([0, committed)), then the
 * pending ones, added by the transaction in progress. A new entry becomes the head of its bucket's
 * chain, and a rehash re-adds entries in array order, so within a chain a later entry always comes
 * before an earlier one. Invariant: the pending entries, taken from the last added, are each the
 * head of their chain when their turn comes; store_sites_forget pops them so, with no search.
 * Why forget on a rollback: a site inserted by a transaction that rolled back (the writer's, or
 * SQLite's own on a full disk) is no longer in the table, and an id remembered for it would name
 * nothing (or, once reused, another site). */
#include "store_sites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store_internal.h"

typedef struct site_ent {
  uint64_t hash;
  int64_t id, line;      /* line -1: NULL */
  uint32_t next;         /* the next entry of the chain, +1; 0: none */
  const char *str[3];    /* file, func, what (NULL: NULL), inside text */
  char *text;            /* one allocation for the three */
} site_ent;

struct store_sites {
  sqlite3_stmt *find, *ins;
  site_ent *ent;
  size_t n, cap, committed;
  uint32_t *bucket;      /* head of each chain, +1; 0: empty */
  size_t nbucket;        /* a power of two, >= 2 n once there are entries */
  /* sites rows committed, as counted at open and by inserts since; an estimate (the sweep's
   * rule needs no more) */
  int64_t rows;
  int64_t inserted;      /* rows inserted by the transaction in progress */
  int64_t new_since_sweep, left_by_sweep;
  int purged;            /* sessions' rows purged since the last sweep */
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
  const unsigned char *b = p;
  for(size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* FNV-1a over the four fields, each string with its terminator (a NULL one as a lone 0xff byte,
 * which no UTF-8 text holds), so ("a", "bc") and ("ab", "c") differ. */
static uint64_t site_hash(const ingest_await *a)
{
  uint64_t h = mix(0xcbf29ce484222325ull, &a->line, sizeof(a->line));
  const char *s[3] = {a->file, a->func, a->what};
  for(int i = 0; i < 3; i++)
    h = s[i] ? mix(h, s[i], strlen(s[i]) + 1) : mix(h, "\xff", 1);
  return h;
}

static int str_same(const char *x, const char *y)
{
  return x == y || (x && y && strcmp(x, y) == 0);
}

static int site_is(const site_ent *e, uint64_t h, const ingest_await *a)
{
  return e->hash == h && e->line == a->line && str_same(e->str[0], a->file) && str_same(e->str[1], a->func) &&
         str_same(e->str[2], a->what);
}

static void link_ent(store_sites *x, size_t i)
{
  uint32_t *head = &x->bucket[x->ent[i].hash & (x->nbucket - 1)];
  x->ent[i].next = *head;
  *head = (uint32_t)(i + 1);
}

/* Forgets every entry (none pending: between transactions, or when all are forgotten anyway). */
static void forget_all(store_sites *x)
{
  for(size_t i = 0; i < x->n; i++)
    free(x->ent[i].text);
  x->n = x->committed = 0;
  if(x->bucket)
    memset(x->bucket, 0, x->nbucket * sizeof(*x->bucket));
}

/* Room for one entry more, the buckets at least twice the entries. 0, or LS_ENOMEM with nothing
 * changed. */
static int make_room(store_sites *x)
{
  if(x->n == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 64;
    site_ent *e = realloc(x->ent, cap * sizeof(*e));
    if(!e)
      return LS_ENOMEM;
    x->ent = e;
    x->cap = cap;
  }
  if(2 * (x->n + 1) > x->nbucket) {
    size_t nb = x->nbucket ? x->nbucket * 2 : 128;
    uint32_t *b = calloc(nb, sizeof(*b));
    if(!b)
      return LS_ENOMEM;
    free(x->bucket);
    x->bucket = b;
    x->nbucket = nb;
    for(size_t i = 0; i < x->n; i++) /* in array order: the chains' order as the invariant says */
      link_ent(x, i);
  }
  return 0;
}

/* Remembers site id for a (pending). Memory that fails only leaves the site unremembered. */
static void remember(store_sites *x, uint64_t h, const ingest_await *a, int64_t id)
{
  if(x->n >= STORE_SITES_MAX_KNOWN || make_room(x))
    return;
  const char *s[3] = {a->file, a->func, a->what};
  size_t len[3], total = 0;
  for(int i = 0; i < 3; i++)
    total += len[i] = s[i] ? strlen(s[i]) + 1 : 0;
  char *text = malloc(total ? total : 1);
  if(!text)
    return;
  site_ent *e = &x->ent[x->n];
  *e = (site_ent){.hash = h, .id = id, .line = a->line, .text = text};
  for(int i = 0; i < 3; i++) {
    if(s[i]) {
      memcpy(text, s[i], len[i]);
      e->str[i] = text;
      text += len[i];
    }
  }
  link_ent(x, x->n++);
}

/* The site of a through statements: found (`IS` on each column, NULLs equal), else inserted. */
static int find_or_insert(store_sites *x, sqlite3 *db, const ingest_await *a, int64_t *id)
{
  sqlite3_stmt *st[2] = {x->find, x->ins};
  for(int k = 0; k < 2; k++) {
    store_bind_text(st[k], 1, a->file);
    store_bind_opt_i64(st[k], 2, a->line);
    store_bind_text(st[k], 3, a->func);
    store_bind_text(st[k], 4, a->what);
    int src = sqlite3_step(st[k]);
    if(k == 0 && src == SQLITE_ROW)
      *id = sqlite3_column_int64(st[k], 0);
    sqlite3_reset(st[k]);
    sqlite3_clear_bindings(st[k]); /* the bound text is the caller's: nothing kept past the call */
    if(src != SQLITE_ROW && src != SQLITE_DONE)
      return store_code_of(src) ? store_code_of(src) : LS_EIO;
    if(k == 0 && src == SQLITE_ROW)
      return 0;
  }
  *id = sqlite3_last_insert_rowid(db);
  x->inserted++;
  return 0;
}

/* The sites a batch resolved last, by the addresses of their strings: a batch with a strings
 * table (docs/api.md) names each of its strings at one address, so its awaits at one site repeat
 * the same four values and find their id here without reading the strings again. Only within one
 * store_sites_resolve (the batch's strings live as long as the call). */
#define MEMO 32
typedef struct memo_ent { const char *file, *func, *what; int64_t line, id; } memo_ent;

static size_t memo_slot(const ingest_await *a)
{
  uint64_t k = (uint64_t)(uintptr_t)a->file * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)a->func * 0xC2B2AE3D27D4EB4Full ^
               (uint64_t)(uintptr_t)a->what * 0x165667B19E3779F9ull ^ (uint64_t)a->line;
  return (size_t)(k >> 59) & (MEMO - 1);
}

int store_sites_resolve(store_sites *x, sqlite3 *db, const ingest_await *a, size_t n, int64_t *ids)
{
  memo_ent memo[MEMO];
  memset(memo, 0, sizeof(memo));
  for(size_t i = 0; i < n; i++) {
    memo_ent *m = &memo[memo_slot(&a[i])];
    /* a zeroed slot matches only an await with every string NULL and line 0: its id is 0, never a
     * rowid, so the test of id keeps it a miss */
    if(m->id && m->file == a[i].file && m->func == a[i].func && m->what == a[i].what && m->line == a[i].line) {
      ids[i] = m->id;
      continue;
    }
    uint64_t h = site_hash(&a[i]);
    uint32_t j = x->nbucket ? x->bucket[h & (x->nbucket - 1)] : 0;
    while(j && !site_is(&x->ent[j - 1], h, &a[i]))
      j = x->ent[j - 1].next;
    if(j)
      ids[i] = x->ent[j - 1].id;
    else {
      int rc = find_or_insert(x, db, &a[i], &ids[i]);
      if(rc)
        return rc;
      remember(x, h, &a[i], ids[i]);
    }
    *m = (memo_ent){a[i].file, a[i].func, a[i].what, a[i].line, ids[i]};
  }
  return 0;
}

void store_sites_commit(store_sites *x)
{
  if(!x)
    return;
  x->committed = x->n;
  x->rows += x->inserted;
  x->new_since_sweep += x->inserted;
  x->inserted = 0;
  if(x->n >= STORE_SITES_MAX_KNOWN)
    forget_all(x); /* a program with more sites than that: the recent ones come back first */
}

void store_sites_forget(store_sites *x)
{
  if(!x)
    return;
  while(x->n > x->committed) {
    site_ent *e = &x->ent[--x->n];
    uint32_t *head = &x->bucket[e->hash & (x->nbucket - 1)];
    *head = e->next; /* the invariant: e is its chain's head */
    free(e->text);
  }
  x->inserted = 0;
}

void store_sites_purged(store_sites *x)
{
  if(x)
    x->purged = 1;
}

int store_sites_sweep_due(const store_sites *x, int64_t min)
{
  return x && x->purged && x->new_since_sweep >= min && x->new_since_sweep >= x->left_by_sweep;
}

int store_sites_sweep(store_sites *x, sqlite3 *db, int64_t *removed)
{
  *removed = 0;
  /* One scan of awaits into a temporary index of the sites it names, then the sites table's own
   * rows looked up in it: O(awaits + sites), which the sweep's rule (only once the sites doubled)
   * keeps to a few times over the life of a database whose sites only grow. */
  int rc = store_exec(db, "DELETE FROM sites WHERE id NOT IN (SELECT site FROM awaits)", NULL, 0);
  if(rc)
    return rc;
  *removed = sqlite3_changes64(db);
  forget_all(x);
  x->rows -= *removed;
  x->left_by_sweep = x->rows;
  x->new_since_sweep = 0;
  x->purged = 0;
  return 0;
}

int64_t store_sites_rows(const store_sites *x)
{
  return x ? x->rows : 0;
}

int64_t store_sites_statements(const store_sites *x)
{
  return x ? sqlite3_stmt_status(x->find, SQLITE_STMTSTATUS_RUN, 0) + sqlite3_stmt_status(x->ins, SQLITE_STMTSTATUS_RUN, 0)
           : 0;
}

size_t store_sites_known(const store_sites *x)
{
  return x ? x->committed : 0;
}

int store_sites_open(sqlite3 *db, store_sites **out, char *err, size_t errlen)
{
  *out = NULL;
  store_sites *x = calloc(1, sizeof(*x));
  if(!x)
    return LS_ENOMEM;
  int src = sqlite3_prepare_v3(db, "SELECT id FROM sites WHERE file IS ?1 AND line IS ?2 AND func IS ?3 AND what IS ?4"
                               " LIMIT 1", -1, SQLITE_PREPARE_PERSISTENT, &x->find, NULL);
  if(src == SQLITE_OK)
    src = sqlite3_prepare_v3(db, "INSERT INTO sites(file, line, func, what) VALUES(?1, ?2, ?3, ?4)", -1,
                             SQLITE_PREPARE_PERSISTENT, &x->ins, NULL);
  int rc = src == SQLITE_OK ? 0 : (store_code_of(src) ? store_code_of(src) : LS_EIO);
  if(rc && err)
    snprintf(err, errlen, "preparing the sites statements: %s", sqlite3_errmsg(db));
  if(!rc)
    rc = store_pragma_int(db, "SELECT count(*) FROM sites", &x->rows);
  if(rc) {
    store_sites_close(x);
    return rc;
  }
  x->left_by_sweep = x->rows;
  *out = x;
  return 0;
}

void store_sites_close(store_sites *x)
{
  if(!x)
    return;
  forget_all(x);
  sqlite3_finalize(x->find);
  sqlite3_finalize(x->ins);
  free(x->ent);
  free(x->bucket);
  free(x);
}
