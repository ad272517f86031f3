/* errors.h — the project's status codes: 0 for success, negative for failure. stats.h
 * defines the first three identically for the pure modules; everything else lives here. */
#ifndef LS_ERRORS_H
#define LS_ERRORS_H

#ifndef LS_OK
#define LS_OK 0
#define LS_ENOMEM (-1)
#define LS_EINVAL (-2)
#endif
#define LS_ETOOBIG (-3)   /* a buffer or input passed its ceiling */
#define LS_EBUSY (-4)     /* storage cannot take it now (queue full, database locked) */
#define LS_EIO (-5)       /* the database or the system failed */
#define LS_ENOTFOUND (-6) /* no such session */
#define LS_ESTOPPED (-7)  /* the writer is shutting down */

#endif
