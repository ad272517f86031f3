/* http_fixture.h — a real http_server on 127.0.0.1 port 0 over a store_fixture, for suites that
 * talk HTTP to the server in-process (test_http.c, test_collector_sender.c). Test code only. */
#ifndef LS_HTTP_FIXTURE_H
#define LS_HTTP_FIXTURE_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "http.h"
#include "store_fixture.h"

/* token: NULL for none; max_per_ip 0: no limit; request_timeout_s: the header+body deadline.
 * The body limit is max_body; "allowed.test" is an --allowed-host. Returns the port. */
static inline unsigned http_fixture_start(store_fixture *st, membudget *budget, const char *token,
                                          size_t max_body, int max_per_ip, int request_timeout_s,
                                          http_server **out)
{
  static const char *const allowed[] = {"allowed.test"};
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  http_config c;
  memset(&c, 0, sizeof c);
  c.addr = (const struct sockaddr *)&sa;
  c.addrlen = sizeof sa;
  c.token = token;
  c.max_body = max_body;
  c.threads = 2;
  c.frame_ancestors = "'self'";
  ingest_default_limits(&c.limits);
  c.budget = budget;
  c.listen = "127.0.0.1:0";
  c.allowed_hosts = allowed;
  c.nallowed_hosts = 1;
  c.max_connections = 64;
  c.max_per_ip = max_per_ip;
  c.request_timeout_s = request_timeout_s;
  c.idle_timeout_s = 60;
  ck_assert_int_eq(http_start(&c, st->s, st->w, &st->m, out), 0);
  unsigned port = http_port(*out);
  ck_assert_uint_gt(port, 0);
  return port;
}

#endif
