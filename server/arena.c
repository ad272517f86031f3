/* arena.c — bump allocator (see arena.h): 64 KiB blocks, a larger request gets a block of its
 * own. Knows nothing of what is stored in it. */
#include "arena.h"

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

void arena_init(arena *a)
{
  a->head = NULL;
  a->failed = 0;
}

void arena_free(arena *a)
{
  arena_block *b = a->head;
  while(b) {
    arena_block *next = b->next;
    free(b);
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
    arena_block *nb = malloc(sizeof(*nb) + cap);
    if(!nb) {
      a->failed = 1;
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
