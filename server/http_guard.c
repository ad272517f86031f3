/* http_guard.c — who may be answered (http_guard.h): the Host check that guards against DNS
 * rebinding, and the bearer token / login cookie rule. Pure functions of header values, so the
 * rules are tested without a server; http.c looks the headers up and decides the status. */
#include "http_guard.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http.h"

/* ------------------------------------------------------------------ Host check */

static int port_ok(const char *p)
{
  while(*p >= '0' && *p <= '9')
    p++;
  return *p == '\0';
}

/* The host of a Host header value or of --listen (host[:port], [v6][:port]) without brackets,
 * port and a trailing dot, into out. -1 if v has not that form. */
int guard_host_part(const char *v, char *out, size_t cap)
{
  const char *start = v, *end;
  if(*v == '[') {
    start = v + 1;
    end = strchr(start, ']');
    if(!end || (end[1] && (end[1] != ':' || !port_ok(end + 2))))
      return -1;
  }
  else {
    end = strchr(v, ':');
    if(!end)
      end = v + strlen(v);
    else if(!port_ok(end + 1))
      return -1;
  }
  size_t n = (size_t)(end - start);
  if(n && start[n - 1] == '.')
    n--;
  if(n == 0 || n >= cap)
    return -1;
  memcpy(out, start, n);
  out[n] = '\0';
  return 0;
}

int http_host_name_ok(const char *name)
{
  if(!strcmp(name, "*"))
    return 1;
  size_t n = strlen(name);
  if(n == 0 || n > 253)
    return 0;
  for(const char *p = name; *p; p++)
    if(!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
         *p == '.' || *p == '_'))
      return 0;
  return 1;
}

/* A request may be answered if its Host names localhost (or a name under .localhost), an IP
 * address (a page on another origin cannot reach the server through a literal address: DNS
 * rebinding needs a name), the --listen host or an --allowed-host. No Host (HTTP/1.0) is allowed:
 * browsers always send one. */
int guard_host_ok(const char *const *allowed, int nallowed, const char *listen_host, const char *value)
{
  if(!value)
    return 1;
  for(int i = 0; i < nallowed; i++)
    if(!strcmp(allowed[i], "*"))
      return 1;
  char host[256];
  if(guard_host_part(value, host, sizeof(host)))
    return 0;
  size_t n = strlen(host);
  if(!strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost")))
    return 1;
  unsigned char addr[sizeof(struct in6_addr)];
  if(inet_pton(AF_INET, host, addr) == 1 || (value[0] == '[' && inet_pton(AF_INET6, host, addr) == 1))
    return 1;
  if(listen_host[0] && !strcasecmp(host, listen_host))
    return 1;
  for(int i = 0; i < nallowed; i++) {
    const char *a = allowed[i];
    size_t an = strlen(a);
    if(an && a[an - 1] == '.')
      an--;
    if(an == n && !strncasecmp(host, a, n))
      return 1;
  }
  return 0;
}

/* The 403 detail for a Host header not allowed; the value is shown with bytes outside
 * printable ASCII as '?', cut at 100. */
void guard_host_refusal(const char *value, char *out, size_t cap)
{
  char shown[101];
  size_t i = 0;
  for(; value[i] && i < sizeof(shown) - 1; i++)
    shown[i] = (value[i] >= 0x20 && value[i] < 0x7f) ? value[i] : '?';
  shown[i] = '\0';
  snprintf(out, cap,
           "Host '%s%s' is not allowed (a DNS rebinding guard): this server answers to localhost, IP "
           "addresses, its --listen host and each --allowed-host",
           shown, value[i] ? "..." : "");
}

/* ------------------------------------------------------------------ token and cookie */

/* a equals b, in time independent of where the first difference is */
static int same_secret(const char *a, const char *b)
{
  size_t n = strlen(a), m = strlen(b);
  unsigned diff = (unsigned)(n ^ m);
  for(size_t i = 0; i < n; i++)
    diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (m ? m : 1)];
  return diff == 0;
}

/* The value of cookie `name` in a Cookie header ("a=1; name=v"), into out. -1 if absent or
 * not shorter than cap. */
static int cookie_value(const char *header, const char *name, char *out, size_t cap)
{
  size_t nl = strlen(name);
  for(const char *p = header; *p;) {
    while(*p == ' ' || *p == '\t' || *p == ';')
      p++;
    size_t len = strcspn(p, ";");
    if(len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
      const char *v = p + nl + 1;
      size_t vn = len - nl - 1;
      while(vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
      if(vn >= cap)
        return -1;
      memcpy(out, v, vn);
      out[vn] = '\0';
      return 0;
    }
    p += len;
  }
  return -1;
}

int guard_token_ok(const char *token, const char *cookie, const char *authorization, const char *cookie_header)
{
  if(!token)
    return 1;
  if(authorization && strncasecmp(authorization, "Bearer ", 7) == 0 && same_secret(authorization + 7, token))
    return 1;
  char value[GUARD_COOKIE_MAX + 1];
  return cookie_header && cookie && cookie_value(cookie_header, GUARD_COOKIE_NAME, value, sizeof(value)) == 0 &&
         same_secret(value, cookie);
}
