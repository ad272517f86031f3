/* arena.h — a bump allocator: strings and small objects that live until the arena is freed,
 * so row arrays can point at text without one malloc per field, and a parsed batch's JSON tree
 * is freed in a few calls instead of one per node. */
#ifndef LS_ARENA_H
#define LS_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;
typedef struct arena {
  arena_block *head;
  int failed;        /* sticky: an allocation failed */
} arena;

void arena_init(arena *a);
void arena_free(arena *a);
/* n bytes aligned for any object, or NULL when memory ran out (then failed=1). */
void *arena_alloc(arena *a, size_t n);
/* A NUL-terminated copy of s[0..n), or NULL when s is NULL or memory ran out (then failed=1). */
const char *arena_strndup(arena *a, const char *s, size_t n);

#endif
