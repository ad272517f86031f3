/* live.h — live event streams (Server-Sent Events): which pages watch which session (or the
 * sessions list), woken by the writer's commits. Routing, auth and Host checks stay http.c's;
 * the JSON of each event is query.c's session summary. */
#ifndef LS_LIVE_H
#define LS_LIVE_H

#include <microhttpd.h>

#include "metrics.h"
#include "store.h"

typedef struct live_hub live_hub;

/* max_streams: streams open at once at most (0: none); heartbeat_ms: a comment line is sent on
 * a stream that had nothing to say for that long (keeps proxies and the idle timeout away).
 * m (NULL: none) gets the streams open, the events sent and the streams refused. */
int live_start(store *s, metrics *m, int max_streams, int heartbeat_ms, live_hub **out);

/* The writer's listener (writer_set_listener): `session` changed (WRITER_* flags). Marks the
 * streams that watch it and wakes those not written to in the last LIVE_MIN_GAP_MS (the others
 * are woken by the hub's ticker then, so a burst of batches becomes one event). */
void live_notify(void *hub, const char *session, int flags);

/* Opens a stream on connection c for `session` (NULL: the sessions list), with its first event
 * (the full state) ready. 0 and *out a response to queue (and destroy); LS_EBUSY past
 * max_streams or while stopping; LS_ENOTFOUND for an unknown session; LS_ENOMEM. */
int live_open(live_hub *hub, struct MHD_Connection *c, const char *session, struct MHD_Response **out);

/* Streams open now. */
int live_count(live_hub *hub);

/* Ends every stream (each closes after what it has to send) and refuses new ones; waits at most
 * wait_ms for them to close. Call before MHD_stop_daemon; live_free after it. */
void live_stop(live_hub *hub, int wait_ms);
void live_free(live_hub *hub);

#endif
