/* export.h — a whole session written out: loopscope JSON (one ingest-v1 batch that can be
 * posted back), Chrome Trace Event JSON (Perfetto), or OTLP/JSON traces. */
#ifndef LS_EXPORT_H
#define LS_EXPORT_H

#include "jbuf.h"
#include "store.h"

/* format: "json", "chrome" or "otlp". 0, LS_EINVAL (unknown format), LS_ENOTFOUND, LS_ENOMEM,
 * LS_ETOOBIG, LS_EIO. */
int export_session(store *s, const char *id, const char *format, jbuf *out);

#endif
