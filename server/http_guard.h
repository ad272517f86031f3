/* http_guard.h — the Host check (DNS rebinding guard) and the token / login cookie rule that
 * http.c applies to every request; pure functions of header values (http_guard.c). */
#ifndef LS_HTTP_GUARD_H
#define LS_HTTP_GUARD_H

#include <stddef.h>

#define GUARD_COOKIE_NAME "loopscope_auth"
#define GUARD_COOKIE_MAX 64 /* the login cookie's value: 64 hex digits */

/* The host of a Host header value or of --listen (host[:port], [v6][:port]) without brackets,
 * port and a trailing dot, into out. -1 if v has not that form. */
int guard_host_part(const char *v, char *out, size_t cap);

/* 1 when a request with Host header `value` (NULL: none) may be answered: localhost or a name
 * under .localhost, an IP literal, listen_host ("" if none), or one of allowed ("*": any). */
int guard_host_ok(const char *const *allowed, int nallowed, const char *listen_host, const char *value);

/* The 403 detail for a Host header not allowed, the value made printable and cut at 100. */
void guard_host_refusal(const char *value, char *out, size_t cap);

/* 1 when a request may pass the token (NULL: no token configured, all pass): its Authorization
 * header is "Bearer <token>", or its Cookie header (NULL: not to be considered) carries the login
 * cookie whose value is `cookie`. Compared in time independent of the secrets' contents. */
int guard_token_ok(const char *token, const char *cookie, const char *authorization, const char *cookie_header);

#endif
