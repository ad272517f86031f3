/* export.h — a whole session written out: loopscope JSON (JSON Lines of ingest-v1 batches, each
 * of which can be posted back), Chrome Trace Event JSON (Perfetto), or OTLP/JSON traces. */
#ifndef LS_EXPORT_H
#define LS_EXPORT_H

#include "jbuf.h"
#include "store.h"

/* format: "json", "chrome" or "otlp". 0, LS_EINVAL (unknown format), LS_ENOTFOUND, LS_ENOMEM,
 * LS_ETOOBIG, LS_EIO. */
int export_session(store *s, const char *id, const char *format, jbuf *out);

/* The media type of what export_session wrote into out: "application/json", except a JSON
 * export of several batches (one per line), "application/x-ndjson". */
const char *export_media_type(const char *format, const jbuf *out);

#endif
