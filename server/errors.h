/* errors.h — the server's one set of status codes (curl's CURLcode, in miniature): 0 for
 * success, negative for failure, the same meaning in every module of the server, and one
 * ls_strerror() that names them. The collector (collector/src) has its own set, LSC_*: the two
 * programs never exchange codes, only HTTP statuses. */
#ifndef LS_ERRORS_H
#define LS_ERRORS_H

#define LS_OK 0
#define LS_ENOMEM (-1)    /* an allocation failed */
#define LS_EINVAL (-2)    /* the input is malformed or out of range */
#define LS_ETOOBIG (-3)   /* a buffer or input passed its ceiling */
#define LS_EBUSY (-4)     /* storage cannot take it now (queue full, database locked) */
#define LS_EIO (-5)       /* the database or the system failed */
#define LS_ENOTFOUND (-6) /* no such session */
#define LS_ESTOPPED (-7)  /* the writer is shutting down */
#define LS_ECORRUPT (-8)  /* the database file is corrupt or not an SQLite database: retrying
                           * cannot help (SQLITE_CORRUPT, SQLITE_NOTADB) */

/* A short lowercase phrase for a code ("out of memory"); never NULL, also for unknown codes. */
const char *ls_strerror(int code);

#endif
