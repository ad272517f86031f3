/* arena.c — string arena (see arena.h). Blocks of 64 KiB, larger strings get their own. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct arena_block {
  arena_block *next;
  size_t used, cap;
  char data[];
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

const char *arena_strndup(arena *a, const char *s, size_t n)
{
  if(!s)
    return NULL;
  arena_block *b = a->head;
  if(!b || b->cap - b->used < n + 1) {
    size_t cap = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
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
  char *p = b->data + b->used;
  memcpy(p, s, n);
  p[n] = '\0';
  b->used += n + 1;
  return p;
}
