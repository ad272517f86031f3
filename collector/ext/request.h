/* request.h — what request.c offers: the Request type and request_open(), the middleware's
 * per-request work. */
#ifndef LS_EXT_REQUEST_H
#define LS_EXT_REQUEST_H

#include "module.h"

#pragma GCC visibility push(hidden)

extern PyTypeObject Request_Type;
PyObject *mod_request_open(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
/* "GET /path" (as a request's session is named) of an ASGI scope, or NULL (no exception set). */
PyObject *request_name_str(PyObject *scope);

#pragma GCC visibility pop

#endif
