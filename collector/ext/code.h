/* code.h — what code.c offers: the code-object cache (names of a coroutine's code, kept per code
 * object) and reading suspended coroutines and generators on each Python version (where an await
 * chain waits, at which line, on what). Recording what is read is record.c's. */
#ifndef LS_EXT_CODE_H
#define LS_EXT_CODE_H

#include "module.h"

#pragma GCC visibility push(hidden)

typedef struct code_info {
  PyObject *code;          /* strong: keeps the pointer from being reused while cached */
  PyObject *qualname;      /* strong str */
  PyObject *fullname;      /* strong str: module.qualname, the task's "coro" */
  const char *file, *func, *qual, *full; /* UTF-8 views into the strings above / the code */
  Py_ssize_t nfile, nfunc, nqual, nfull;
  int is_lib;              /* file under the stdlib or site-packages */
  int is_asyncio;          /* file inside the asyncio package (its own housekeeping tasks) */
  /* The instruction offset this code's frame was last found suspended at, and that offset's line
   * (last_line 0: none yet): a coroutine mostly waits where it waited last time, and this line of
   * the code_info is read anyway (is_lib), where the shared line cache is a line of its own per
   * await, somewhere in its 64 KiB. */
  int last_lasti, last_line;
  /* file, func, qual and full's numbers in the collector's string table plus one (0: none), for
   * the ls_str the records name them by (ls_collector_string): looked up once per collector, not
   * on every record. Valid while sid_gen is G.core_gen: a code_info made before start() or kept
   * across a stop and the next start looks them up again (code_sids). */
  uint32_t sid_file, sid_func, sid_qual, sid_full, sid_gen;
} code_info;

/* ci's string numbers (sid_*) looked up in the running collector's table. */
void code_sids_fill(code_info *ci);
static LS_ALWAYS_INLINE void code_sids(code_info *ci) {
  if (ci->sid_gen != G.core_gen) code_sids_fill(ci);
}

/* At module init: finds the getters behind cr_await and gi_yieldfrom. */
void code_init(void);
/* The info for code object code of coroutine/generator obj (frame given when known), or NULL. */
code_info *code_info_of(PyObject *code, PyObject *obj, PyObject *frame);
/* The info of a coroutine or generator, or NULL. */
code_info *info_of(PyObject *obj);
/* info_of(coro) when coro is a coroutine or generator, else NULL. */
code_info *coro_code_info(PyObject *coro);
/* Where the suspended await chain of coro waits (see code.c); *awaited: what it awaits. */
code_info *await_point(PyObject *coro, int *line, PyObject **awaited);
/* Empties the code cache (and the line cache keyed by its code objects): at stop. */
void codes_clear(void);
/* What a coroutine's or generator's frame state says, as learnt from samples at setup. */
enum { CORO_UNKNOWN = 0, CORO_CREATED, CORO_SUSPENDED, CORO_FINISHED };

/* What setup_done learnt about this interpreter's coroutine and generator objects (code.c writes
 * it, once per install): where the int8 frame state is and what each value means. The values come
 * from sample objects, never from their sign (3.14 numbers created -3 and finished 4, 3.15 0 and 5). */
typedef struct frame_layout {
  Py_ssize_t state_off;     /* byte offset of the frame state in a coroutine/generator, 0: unknown */
  unsigned char cls[256];   /* frame state (as a byte) -> CORO_*: only values the samples showed */
} frame_layout;
extern frame_layout FL;

/* What the frame state of coroutine or generator obj (exact types only) says: CORO_UNKNOWN unless
 * the samples showed its value. Callers use it only to skip work, never to decide alone. */
static LS_ALWAYS_INLINE int coro_state(PyObject *obj) {
  return FL.state_off ? FL.cls[*(const unsigned char *)((const char *)obj + FL.state_off)] : CORO_UNKNOWN;
}

/* setup_done: learns and checks how this interpreter's coroutines and generators are read, from
 * samples: a list of (kind, obj, line), kind "created", "suspended" or "finished", line where a
 * suspended sample waits (0: not checked). 0, or -1 with an exception set; a check that fails only
 * leaves the slower public path (attributes and frame objects) in use. */
int code_learn_frames(PyObject *samples);
/* Tests: the next code_learn_frames learns nothing, as when every check fails. */
void code_force_fallback(int on);
/* How await lines are read on this interpreter (tests check the fast way is in use). */
const char *code_frame_reading(void);
/* What code_learn_frames learnt, as a dict (tests). */
PyObject *code_layout(void);

#pragma GCC visibility pop

#endif
