/* arena.c — bump allocator (see arena.h): 64 KiB blocks, a larger request gets a block of its
 * own, each counted against the arena's cap and its budget; some freed blocks are kept for the
 * next arenas of any thread. Knows nothing of what is stored in it. */
#include "arena.h"

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
  arena_block *next;
  size_t used, cap;
  _Alignas(max_align_t) char data[];
};

enum { ARENA_BLOCK = 64 * 1024 };

/* Blocks of ARENA_BLOCK bytes that arenas freed, kept for the next arenas of any thread, linked
 * through next under pool_lock: up to ARENA_KEEP of them (32 MiB, about two full ingest bodies'
 * trees: one parsed while the one before is written), until the writer, a second after its last
 * write, gives them back (arena_pool_drain); what queries alone kept since stays, 32 MiB at most. Why keep them: a parse of a large ingest body fills hundreds of blocks;
 * malloc gave their pages back to the system once they were freed, and the next parse faulted
 * every one in again (a quarter of the parse threads' time on a burst of small sessions, perf).
 * Why one pool and not one per thread: a batch's arena is filled by a parse thread and freed by
 * the writer, so blocks kept by the thread that freed them never served a parse (ls-parse still
 * took 13 page faults a session; 2.7 with the pool, the first body's: bench/overhead/README.md,
 * stop 42). A kept block is in no budget: the memory counted is what arenas hold. The lock is
 * taken once per 64 KiB block, not per allocation. */
enum { ARENA_KEEP = 512 };
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static arena_block *pool_head; /* guarded by pool_lock, as pool_n */
static size_t pool_n;

/* A kept block, or NULL when none is kept. */
static arena_block *pool_take(void)
{
  pthread_mutex_lock(&pool_lock);
  arena_block *b = pool_head;
  if(b) {
    pool_head = b->next;
    pool_n--;
  }
  pthread_mutex_unlock(&pool_lock);
  return b;
}

/* Keeps b (a standard block) when there is room, else frees it. */
static void pool_give(arena_block *b)
{
  pthread_mutex_lock(&pool_lock);
  int keep = pool_n < ARENA_KEEP;
  if(keep) {
    b->next = pool_head;
    pool_head = b;
    pool_n++;
  }
  pthread_mutex_unlock(&pool_lock);
  if(!keep)
    free(b);
}

size_t arena_kept_blocks(void)
{
  pthread_mutex_lock(&pool_lock);
  size_t n = pool_n;
  pthread_mutex_unlock(&pool_lock);
  return n;
}

void arena_pool_drain(void)
{
  pthread_mutex_lock(&pool_lock);
  arena_block *b = pool_head;
  pool_head = NULL;
  pool_n = 0;
  pthread_mutex_unlock(&pool_lock);
  while(b) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
}

void membudget_init(membudget *b, long long limit)
{
  atomic_init(&b->used, 0);
  b->limit = limit;
}

int membudget_take(membudget *b, size_t n)
{
  if(n > (size_t)LLONG_MAX / 2)
    return -1;
  long long now = atomic_fetch_add(&b->used, (long long)n) + (long long)n;
  if(b->limit > 0 && now > b->limit) {
    atomic_fetch_sub(&b->used, (long long)n);
    return -1;
  }
  return 0;
}

void membudget_give(membudget *b, size_t n)
{
  atomic_fetch_sub(&b->used, (long long)n);
}

long long membudget_used(membudget *b)
{
  return atomic_load(&b->used);
}

void arena_init(arena *a)
{
  a->head = NULL;
  a->failed = ARENA_OK;
  a->cap = 0;
  a->used = 0;
  a->budget = NULL;
}

void arena_limit(arena *a, size_t cap, membudget *budget)
{
  a->cap = cap;
  a->budget = budget;
}

int arena_charge(arena *a, size_t n)
{
  if(a->failed)
    return -1;
  if(a->cap && (n > a->cap || a->used > a->cap - n)) {
    a->failed = ARENA_CAPPED;
    return -1;
  }
  if(a->budget && membudget_take(a->budget, n)) {
    a->failed = ARENA_NOBUDGET;
    return -1;
  }
  a->used += n;
  return 0;
}

void arena_free(arena *a)
{
  if(a->budget)
    membudget_give(a->budget, a->used);
  a->used = 0;
  arena_block *b = a->head;
  while(b) {
    arena_block *next = b->next;
    if(b->cap == ARENA_BLOCK)
      pool_give(b);
    else
      free(b);
    b = next;
  }
  a->head = NULL;
}

/* n bytes starting at a multiple of align (a power of two), from the current block or a new
 * one (whose data starts aligned for anything). The padding is a mask, not `%`: align is not a
 * constant here, and the two divisions `%` compiled to were half of this function's samples (perf,
 * a burst of small sessions: every cJSON node of a parse comes through here). */
static char *arena_take(arena *a, size_t n, size_t align)
{
  arena_block *b = a->head;
  size_t pad = b ? (0 - b->used) & (align - 1) : 0;
  if(!b || b->cap - b->used < n || b->cap - b->used - n < pad) {
    pad = 0;
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    if(cap > SIZE_MAX - sizeof(arena_block) || arena_charge(a, sizeof(arena_block) + cap))
      return NULL;
    arena_block *nb = cap == ARENA_BLOCK ? pool_take() : NULL; /* a kept one's pages are in already */
    if(!nb)
      nb = malloc(sizeof(*nb) + cap);
    if(!nb) {
      a->used -= sizeof(arena_block) + cap;
      if(a->budget)
        membudget_give(a->budget, sizeof(arena_block) + cap);
      a->failed = ARENA_NOMEM;
      return NULL;
    }
    nb->used = 0;
    nb->cap = cap;
    /* A big string's own block goes second so the current block keeps filling. */
    if(b && cap > ARENA_BLOCK) {
      nb->next = b->next;
      b->next = nb;
    }
    else {
      nb->next = b;
      a->head = nb;
    }
    b = nb;
  }
  char *p = b->data + b->used + pad;
  b->used += pad + n;
  return p;
}

/* The common case in line: room in the current block. Every cJSON node and string of an ingest
 * body comes this way (~1300 a web request's session), where arena_take's general path (padding
 * for any alignment, a new block) cost ~30 instructions a call (bench/overhead/ingest_cg.sh). */
void *arena_alloc(arena *a, size_t n)
{
  enum { ALIGN = _Alignof(max_align_t) };
  arena_block *b = a->head;
  if(b && n) {
    size_t at = (b->used + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
    if(at <= b->cap && n <= b->cap - at) {
      b->used = at + n;
      return b->data + at;
    }
  }
  return arena_take(a, n ? n : 1, ALIGN);
}

const char *arena_strndup(arena *a, const char *s, size_t n)
{
  if(!s || n == SIZE_MAX)
    return NULL;
  char *p = arena_take(a, n + 1, 1);
  if(!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}
