/* ingest.h — turns one ingest-v1 body (JSON bytes: one batch, or several under "batches"; or the
 * same batches in the binary record form) into validated rows, or names the first bad field. No
 * SQL and no HTTP here: writer.c/store_put.c store the rows, http.c answers. */
#ifndef LS_INGEST_H
#define LS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

typedef struct ingest_limits {
  size_t max_events;  /* events per body: one batch's, or all the batches' of a multi-batch body */
  size_t max_batches; /* batches in one multi-batch body ("batches": [...]) */
  size_t max_string;  /* bytes of an ordinary string (names, files, ids of functions) */
  size_t max_exc;     /* bytes of a done event's exc and of a frame's src */
  size_t max_frames;  /* frames in a block's stack */
  int max_depth;      /* nesting of arrays/objects anywhere in the body */
  /* Bytes one parsed batch may hold: its JSON tree (cJSON nodes and strings, >= 64 bytes a value),
   * row arrays and stack text; 0: no cap. Past it: LS_ETOOBIG. */
  size_t max_tree;
  /* Shared by every batch being parsed or waiting for the writer (NULL: none): the batch's bytes
   * are reserved there until ingest_free. Exhausted: LS_EBUSY. */
  struct membudget *budget;
} ingest_limits;

/* The largest integer of the contract, 2^53 - 1: numbers the server adds up saturate here. */
#define INGEST_MAX_INT ((int64_t)9007199254740991)

/* The defaults documented in docs/api.md. */
void ingest_default_limits(ingest_limits *lim);

enum { INGEST_STEP = 0, INGEST_AWAIT = 1, INGEST_BLOCK = 2, INGEST_LAG = 3, INGEST_NKINDS = 4 };

/* Strings point into the batch's parsed JSON and live as long as the batch; NULL = absent. */
typedef struct ingest_meta {
  int present;
  const char *name, *service, *host, *python, *started; /* started: decimal string */
  const char *route;  /* the route template, e.g. "GET /users/{user_id}" (schema 5) */
  int64_t pid;       /* -1 when absent */
  int64_t loop;      /* the loop's per-process number (schema 6), -1 when absent */
  int64_t started_ns; /* started as an integer, -1 when absent */
  /* meta.fraction (schema 14): the share of requests its middleware recorded, drawn at random,
   * this one among them, in (0, 1]; 0 when absent (every request recorded, or not a request) */
  double fraction;
} ingest_meta;

typedef struct ingest_task { int64_t id, parent, t; const char *name, *coro; } ingest_task;
typedef struct ingest_step { int64_t id, t, d; } ingest_step;
typedef struct ingest_await {
  int64_t id, t, d, line; /* line -1 when absent */
  const char *what, *file, *func;
} ingest_await;
typedef struct ingest_block {
  int64_t id, t, d, line; /* id 0: no task of this session ran; line of the innermost frame */
  int elsewhere;           /* 1: the block came from outside the session (from_session present) */
  const char *from_session; /* the causing session's id, NULL: none (or an own block) */
  int64_t from_task;       /* the causing session's task, 0: none */
  const char *file, *func, *src; /* innermost frame, NULL when the stack is empty */
  size_t stack_off, stack_len;   /* the stack re-encoded as JSON, in batch->stacks */
  int64_t stack_t;               /* ns after t when the stack was taken (additive to v1), -1: unknown */
} ingest_block;
typedef struct ingest_lag { int64_t t, d; } ingest_lag;
typedef struct ingest_done {
  int64_t id, t, status; /* status: the HTTP response status of a request's task, -1 when absent */
  const char *state, *exc;
} ingest_done;

typedef struct ingest_batch {
  const char *batch, *session;
  ingest_meta meta;
  ingest_task *tasks;   size_t ntasks;
  ingest_step *steps;   size_t nsteps;
  ingest_await *awaits; size_t nawaits;
  ingest_block *blocks; size_t nblocks;
  ingest_lag *lags;     size_t nlags;
  ingest_done *dones;   size_t ndones;
  int64_t dropped;      /* sum of the drop events' n */
  int has_end;
  int64_t end_t;
  int64_t unknown;      /* events of a kind this version does not know */
  int64_t max_t;        /* largest t, or t + d, of any event; 0 when none */
  int64_t max_d[INGEST_NKINDS]; /* longest duration per kind, for range queries */
  size_t events;        /* every event in the batch, unknown kinds included */
  char *stacks;         /* JSON text of all block stacks, back to back */
  void *json_root;      /* the parsed document that the strings point into (first batch only) */
  struct arena *json_arena; /* where that document lives (freed with the first batch) */
  /* A multi-batch body ({"v": 1, "batches": [...]}) parses into a chain in body order: the first
   * batch owns the document, the arena and every later batch (they live in the arena), and only
   * it is passed to ingest_free. NULL: the last (or only) batch. */
  struct ingest_batch *next;
  /* The writer's outcome for this batch (writer.c sets them; ingest_parse leaves them 0): it had
   * been stored before, it made its session. */
  int duplicate, created;
} ingest_batch;

/* Parses and validates body[0..len): one batch, or a multi-batch body whose every batch is
 * validated, as a chain (next), before anything is returned. On success *out owns everything
 * (ingest_free it) and 0 is returned. On a bad batch LS_EINVAL is returned and detail receives
 * the first bad field, e.g. "events[12].t: expected an integer in [0, 2^53)", in a multi-batch
 * body "batches[3].events[12].t: ..."; LS_ETOOBIG when the parsed body would
 * pass lim->max_tree, LS_EBUSY when lim->budget ran out (detail says which); LS_ENOMEM when
 * memory ran out. */
int ingest_parse(const char *body, size_t len, const ingest_limits *lim, ingest_batch **out,
                 char *detail, size_t detail_len);
/* The binary form of an ingest body (docs/api.md, "Binary record bodies"): its media type, and
 * the four bytes it begins with. */
#define INGEST_RECORDS_MEDIA "application/vnd.loopscope.records"
#define INGEST_RECORDS_MAGIC "LSR1"

/* As ingest_parse, for a body in the binary record form: the same batches, rows, limits and
 * results; detail names the place of the first bad value as "batches[i].events[j].field: ...". */
int ingest_parse_records(const char *body, size_t len, const ingest_limits *lim, ingest_batch **out,
                         char *detail, size_t detail_len);
/* Frees a parsed body: b and every batch chained after it. */
void ingest_free(ingest_batch *b);

/* Batches in the chain that starts at b (1 for a single batch). */
size_t ingest_count(const ingest_batch *b);

/* Parses JSON text into a tree whose nodes live in a (an arena.h arena, arena_init'ed by the
 * caller; the tree dies with arena_free, never cJSON_Delete), with the same hooks ingest_parse
 * uses: no malloc per node. The tree (a cJSON *), or NULL when the text is not JSON or the arena
 * refused memory. For code that reads a whole JSON text once, e.g. the fuzz targets' checks. */
void *ingest_json_parse_in(struct arena *a, const char *text, size_t len);

/* 1 for an acceptable session or batch id: 1..128 bytes of [A-Za-z0-9._:@+~=-]. */
int ingest_id_ok(const char *s);

#endif
