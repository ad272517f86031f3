/* export.h — a whole session written out: loopscope JSON (one ingest-v1 batch that can be
 * posted back). Chrome Trace and OTLP are not written yet (http.c answers 400 for them). */
#ifndef LS_EXPORT_H
#define LS_EXPORT_H

#include "jbuf.h"
#include "store.h"

/* 0, LS_ENOTFOUND, LS_ENOMEM, LS_ETOOBIG, LS_EIO. */
int export_json(store *s, const char *id, jbuf *out);

#endif
