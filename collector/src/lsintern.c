/* lsintern.c — the collector's string table: the strings records repeat (a task's coroutine, an
 * await's file, function and awaited object) kept once, so that a record carries a small number
 * instead of the bytes. Records are lsencode.c's; the table only numbers strings and gives them
 * back. Fixed capacity: once full, records carry new strings inline, as before the table.
 *
 * Lookups take no lock (any writer thread, under the GIL or not): a slot holds the string's hash
 * and number and is published with a release store after its entry and bytes are written, so a
 * reader that loads it with acquire sees them. Additions take the table's own mutex. Entries and
 * bytes never move nor go away until ls_intern_free, so the sender can read a string whose number
 * it found in a record published (release) after the string was added. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lscore.h"

#define SLOTS 16384                  /* power of two; at most half of them used: short probes */
#define ENTRIES (SLOTS / 2)
_Static_assert(ENTRIES == LS_INTERN_ENTRIES, "lscore.h says how many strings a table numbers");
#define BLOCK 65536                  /* bytes of string text per block */
#define BLOCKS 16                    /* 1 MiB of text at most */
#define PCACHE_BITS 12               /* the pointer cache: 4096 slots */
#define ID_BITS 14                   /* ENTRIES + 1 fits */

typedef struct entry { const char *p; uint32_t n; } entry;

struct ls_intern {
  /* Where a string was last found, by its address: (address << ID_BITS) | (number + 1). The
   * writers pass the same few addresses again and again (a code object's file and function, a
   * task entry's buffer), so most lookups end here with one compare of the bytes instead of
   * hashing them. Only a hint: a hit is confirmed against the entry's bytes (the address may have
   * been freed and reused for other text, or its buffer rewritten), and racing stores are fine. */
  _Atomic uint64_t pcache[1u << PCACHE_BITS];
  _Atomic uint64_t slot[SLOTS];      /* 0: empty; else hash (high 32 bits) and number + 1 */
  entry ent[ENTRIES];
  _Atomic int full;                  /* set once an addition found no room: no more locking */
  pthread_mutex_t mu;                /* additions */
  uint32_t nent;                     /* entries in use (under mu) */
  char *block[BLOCKS];
  int nblock;
  size_t block_used;                 /* bytes used of the last block */
};

/* A hash of n bytes at p, eight at a time (the table lives in one process: byte order does not
 * matter). A used slot is nonzero whatever the hash: its low word is the number + 1. */
static uint32_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  return (uint32_t)h;
}

int ls_intern_new(ls_intern **out) {
  ls_intern *t = calloc(1, sizeof *t);
  if (!t) return LSC_ENOMEM;
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return LSC_OK;
}

void ls_intern_free(ls_intern *t) {
  if (!t) return;
  for (int i = 0; i < t->nblock; i++) free(t->block[i]);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void ls_intern_after_fork_child(ls_intern *t) {
  /* the strings stay valid in the child; only the mutex may have been held by a thread that is
   * gone (the module forks under the GIL, which every writer holds, so in practice it is free) */
  if (t) pthread_mutex_init(&t->mu, NULL);
}

/* The slot of p/n with hash h: its number, or -1 with *free_at the empty slot ending the probe. */
static int64_t probe(const ls_intern *t, const char *p, size_t n, uint32_t h, size_t *free_at) {
  for (size_t i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
    uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_acquire);
    if (!v) { *free_at = i; return -1; }
    if ((uint32_t)(v >> 32) != h) continue;
    uint32_t id = (uint32_t)v - 1;
    const entry *e = &t->ent[id];
    if (e->n == n && memcmp(e->p, p, n) == 0) return id;
  }
}

static int64_t intern_slow(ls_intern *t, const char *p, size_t n);

static size_t pcache_at(const char *p, size_t n) {
  /* n far above the address bits that differ between nearby strings: (p ^ n) made two neighbours
   * with their lengths share a slot */
  return (size_t)((((uint64_t)(uintptr_t)p ^ ((uint64_t)n << 44)) * 0x9E3779B97F4A7C15ull) >> (64 - PCACHE_BITS));
}

int64_t ls_intern_id(ls_intern *t, const char *p, size_t n) {
  if (n > LS_INTERN_MAX_STR) return -1;
  _Atomic uint64_t *pc = &t->pcache[pcache_at(p, n)];
  uint64_t tag = (uint64_t)(uintptr_t)p << ID_BITS;
  uint64_t v = atomic_load_explicit(pc, memory_order_acquire); /* the entry was written before */
  if ((v & ~(((uint64_t)1 << ID_BITS) - 1)) == tag && (v & (((uint64_t)1 << ID_BITS) - 1))) {
    uint32_t id = (uint32_t)(v & (((uint64_t)1 << ID_BITS) - 1)) - 1;
    const entry *e = &t->ent[id];
    if (e->n == n && memcmp(e->p, p, n) == 0) return id;
  }
  int64_t id = intern_slow(t, p, n);
  if (id >= 0) atomic_store_explicit(pc, tag | (uint64_t)(id + 1), memory_order_release);
  return id;
}

/* ls_intern_id past the pointer cache: by the bytes' hash, adding them if new. */
static int64_t intern_slow(ls_intern *t, const char *p, size_t n) {
  uint32_t h = hash_bytes(p, n);
  size_t at;
  int64_t id = probe(t, p, n, h, &at); /* the table is never more than half full: it ends */
  if (id >= 0 || atomic_load_explicit(&t->full, memory_order_relaxed)) return id;
  pthread_mutex_lock(&t->mu);
  id = probe(t, p, n, h, &at); /* another writer may have added it meanwhile */
  if (id < 0) {
    if (t->nblock == 0 || t->block_used + n > BLOCK) {
      char *b = t->nent < ENTRIES && t->nblock < BLOCKS ? malloc(BLOCK) : NULL;
      if (b) {
        t->block[t->nblock++] = b;
        t->block_used = 0;
      }
    }
    if (t->nent >= ENTRIES || t->nblock == 0 || t->block_used + n > BLOCK) {
      atomic_store_explicit(&t->full, 1, memory_order_relaxed); /* out of entries or of text */
    } else {
      char *dst = t->block[t->nblock - 1] + t->block_used;
      if (n) memcpy(dst, p, n);
      t->block_used += n;
      id = t->nent++;
      t->ent[id] = (entry){dst, (uint32_t)n};
      atomic_store_explicit(&t->slot[at], ((uint64_t)h << 32) | (uint64_t)(id + 1), memory_order_release);
    }
  }
  pthread_mutex_unlock(&t->mu);
  return id;
}

int ls_intern_get(const ls_intern *t, uint64_t id, ls_str *out) {
  /* id came from a record published after the entry was written: no lock, but never past what
   * was ever handed out (a corrupt record must not read beyond the array) */
  if (!t || id >= ENTRIES) return 0;
  const entry *e = &t->ent[id];
  if (!e->p) return 0;
  out->p = e->p;
  out->n = e->n;
  out->sid = (uint32_t)id + 1;
  return 1;
}

size_t ls_intern_count(ls_intern *t) {
  pthread_mutex_lock(&t->mu);
  size_t n = t->nent;
  pthread_mutex_unlock(&t->mu);
  return n;
}
