/* arena.c — bump allocator (see arena.h): 64 KiB blocks, a larger request gets a block of its
 * own, each counted against the arena's cap and its budget; a thread keeps some freed blocks for
 * its next arenas. Knows nothing of what is stored in it. */
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

/* Blocks of ARENA_BLOCK bytes a thread's arenas freed, kept (up to ARENA_KEEP of them: 8 MiB) for
 * its next arenas, linked through next, in a thread-specific value whose destructor frees them
 * when the thread ends. Why: a parse of a large ingest body fills hundreds of blocks and frees
 * them all; malloc then gave the pages back to the system, and the next parse faulted every one
 * in again (a quarter of the parse threads' time on a burst of small sessions, perf). A kept
 * block is not counted in any budget: the memory counted is what arenas hold. */
enum { ARENA_KEEP = 128 };
typedef struct kept_blocks { arena_block *head; size_t n; } kept_blocks;
static pthread_key_t kept_key;
static pthread_once_t kept_once = PTHREAD_ONCE_INIT;
static int kept_ok;

static void kept_free(void *v)
{
  kept_blocks *k = v;
  while(k->head) {
    arena_block *next = k->head->next;
    free(k->head);
    k->head = next;
  }
  free(k);
}

static void kept_init(void)
{
  kept_ok = pthread_key_create(&kept_key, kept_free) == 0;
}

/* This thread's kept blocks, made on first use (create); NULL when there are none or no memory. */
static kept_blocks *kept(int create)
{
  pthread_once(&kept_once, kept_init);
  if(!kept_ok)
    return NULL;
  kept_blocks *k = pthread_getspecific(kept_key);
  if(!k && create && (k = calloc(1, sizeof(*k))) && pthread_setspecific(kept_key, k)) {
    free(k);
    k = NULL;
  }
  return k;
}

size_t arena_kept_blocks(void)
{
  kept_blocks *k = kept(0);
  return k ? k->n : 0;
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
  kept_blocks *k = b ? kept(1) : NULL;
  while(b) {
    arena_block *next = b->next;
    if(k && b->cap == ARENA_BLOCK && k->n < ARENA_KEEP) {
      b->next = k->head;
      k->head = b;
      k->n++;
    }
    else {
      free(b);
    }
    b = next;
  }
  a->head = NULL;
}

/* n bytes starting at a multiple of align (a power of two), from the current block or a new
 * one (whose data starts aligned for anything). */
static char *arena_take(arena *a, size_t n, size_t align)
{
  arena_block *b = a->head;
  size_t pad = b ? (align - b->used % align) % align : 0;
  if(!b || b->cap - b->used < n || b->cap - b->used - n < pad) {
    pad = 0;
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    if(cap > SIZE_MAX - sizeof(arena_block) || arena_charge(a, sizeof(arena_block) + cap))
      return NULL;
    kept_blocks *k = cap == ARENA_BLOCK ? kept(0) : NULL;
    arena_block *nb;
    if(k && k->head) { /* one this thread kept: its pages are in already */
      nb = k->head;
      k->head = nb->next;
      k->n--;
    }
    else {
      nb = malloc(sizeof(*nb) + cap);
    }
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

void *arena_alloc(arena *a, size_t n)
{
  return arena_take(a, n ? n : 1, _Alignof(max_align_t));
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
