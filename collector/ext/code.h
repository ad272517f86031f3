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
} code_info;

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
/* setup_done: checks the 3.11 frame layout on a suspended sample coroutine. 0, or -1 with an
 * exception set. Nothing to check on other versions. */
int code_check_frames(PyObject *suspended);
/* How await lines are read on this interpreter (tests check the fast way is in use). */
const char *code_frame_reading(void);

#pragma GCC visibility pop

#endif
