/* arena.h — a bump allocator: strings and small objects that live until the arena is freed,
 * so row arrays can point at text without one malloc per field, and a parsed batch's JSON tree
 * is freed in a few calls instead of one per node. An arena may have a cap of its own and draw
 * on a memory budget shared with other arenas (and anything else that reserves from it). */
#ifndef LS_ARENA_H
#define LS_ARENA_H

#include <stdatomic.h>
#include <stddef.h>

/* Bytes reserved by every holder together, at most `limit` (0: no limit). Thread-safe. */
typedef struct membudget {
  atomic_llong used;
  long long limit;
} membudget;

void membudget_init(membudget *b, long long limit);
/* Reserves n bytes: 0, or -1 when that would pass the limit (nothing reserved then). */
int membudget_take(membudget *b, size_t n);
void membudget_give(membudget *b, size_t n);
long long membudget_used(membudget *b);

/* Why an arena refused memory (sticky). */
enum { ARENA_OK = 0, ARENA_NOMEM = 1, ARENA_CAPPED = 2, ARENA_NOBUDGET = 3 };

typedef struct arena_block arena_block;
typedef struct arena {
  arena_block *head;
  int failed;        /* sticky: an allocation failed, ARENA_* */
  size_t cap;        /* bytes at most, blocks and charges together (0: no cap) */
  size_t used;       /* bytes of blocks and charges, reserved in budget when there is one */
  membudget *budget; /* NULL: none */
} arena;

void arena_init(arena *a);
/* Caps the arena at cap bytes (0: none) and draws its blocks from budget (NULL: none). */
void arena_limit(arena *a, size_t cap, membudget *budget);
/* Frees every block and gives the arena's bytes back to its budget; up to 32 MiB of standard
 * blocks, counting those kept already, are kept for the next arenas of any thread (an arena
 * filled on one thread is often freed on another: a batch's, parsed and then written). */
void arena_free(arena *a);
/* How many freed blocks are kept (for tests). */
size_t arena_kept_blocks(void);
/* Frees the kept blocks: when ingest has been idle a while (the writer), and at exit, so that leak
 * checkers see none. Thread-safe. */
void arena_pool_drain(void);
/* n bytes aligned for any object, or NULL when memory ran out, the cap or the budget was reached
 * (then failed says which). */
void *arena_alloc(arena *a, size_t n);
/* A NUL-terminated copy of s[0..n), or NULL when s is NULL or arena_alloc would fail. */
const char *arena_strndup(arena *a, const char *s, size_t n);
/* Counts n bytes allocated elsewhere that live as long as the arena against its cap and budget:
 * 0, or -1 (failed set, nothing counted). */
int arena_charge(arena *a, size_t n);

#endif
