/* test_otlp_push.c — Check suite for server/otlp_push.c's configuration and answer rules: the
 * OTEL_EXPORTER_OTLP_* variables (generic vs traces endpoint, headers percent-decoded, bad values
 * refused), Retry-After in both forms, and which statuses are retried. The thread itself is
 * tested against a receiver in tests/integration/test_otlp_push.py. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_push.h"
#include "check_run.h"

static const char *env_names[8], *env_values[8];
static int nenv;

static char *fake_getenv(const char *name)
{
  for(int i = 0; i < nenv; i++)
    if(!strcmp(env_names[i], name))
      return (char *)env_values[i];
  return NULL;
}

static void set_env(const char *name, const char *value)
{
  env_names[nenv] = name;
  env_values[nenv++] = value;
}

static int load(otlp_push_config *c, char *err)
{
  otlp_push_defaults(c);
  return otlp_push_from_env(c, fake_getenv, err, 256);
}

START_TEST(endpoints)
{
  otlp_push_config c;
  char err[256];
  nenv = 0;
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_ptr_null(c.endpoint);
  ck_assert_int_eq(c.gzip, 1);
  ck_assert_uint_eq(c.max_request_bytes, 4u << 20);
  /* the generic variable is a base URL: /v1/traces is appended, with or without its slash */
  set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_str_eq(c.endpoint, "http://collector:4318/v1/traces");
  env_values[0] = "https://otlp.example/prefix/";
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_str_eq(c.endpoint, "https://otlp.example/prefix/v1/traces");
  /* the traces variable is used as it is, and wins */
  set_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/custom");
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_str_eq(c.endpoint, "http://jaeger:4318/custom");
  env_values[1] = "jaeger:4318";
  ck_assert_int_eq(load(&c, err), -1);
  ck_assert_ptr_nonnull(strstr(err, "TRACES_ENDPOINT"));
}
END_TEST

START_TEST(headers_and_settings)
{
  otlp_push_config c;
  char err[256];
  nenv = 0;
  set_env("OTEL_EXPORTER_OTLP_HEADERS", " api-key = a%3Db%2Cc ,x-tenant=t1,, ");
  set_env("OTEL_EXPORTER_OTLP_TIMEOUT", "2500");
  set_env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none");
  set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_int_eq(c.nheaders, 2);
  ck_assert_str_eq(c.headers[0], "api-key: a=b,c");
  ck_assert_str_eq(c.headers[1], "x-tenant: t1");
  ck_assert_int_eq(c.timeout_ms, 2500);
  ck_assert_int_eq(c.gzip, 0);
  /* the traces variable replaces the generic one */
  set_env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "only=this");
  ck_assert_int_eq(load(&c, err), 0);
  ck_assert_int_eq(c.nheaders, 1);
  ck_assert_str_eq(c.headers[0], "only: this");
  static const char *const bad[][2] = {
    {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "novalue"},
    {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad name=x"},
    {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "k=a%0Db"}, /* a CR would end the header line */
    {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "k=%4"},
    {"OTEL_EXPORTER_OTLP_TIMEOUT", "0"},
    {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
  };
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    nenv = 0;
    set_env(bad[i][0], bad[i][1]);
    ck_assert_msg(load(&c, err) == -1, "%s=%s accepted", bad[i][0], bad[i][1]);
    ck_assert(strlen(err) > 0);
  }
}
END_TEST

START_TEST(retry_rules)
{
  int64_t ms = -1;
  ck_assert_int_eq(otlp_push_retry_after("3", 0, &ms), 0);
  ck_assert_int_eq(ms, 3000);
  ck_assert_int_eq(otlp_push_retry_after(" 0 ", 0, &ms), 0);
  ck_assert_int_eq(ms, 0);
  ck_assert_int_eq(otlp_push_retry_after("99999999", 0, &ms), 0);
  ck_assert_int_eq(ms, 3600 * 1000); /* at most an hour */
  /* an HTTP-date: Sun, 06 Nov 1994 08:49:37 GMT is 784111777 */
  ck_assert_int_eq(otlp_push_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770, &ms), 0);
  ck_assert_int_eq(ms, 7000);
  ck_assert_int_eq(otlp_push_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800, &ms), 0);
  ck_assert_int_eq(ms, 0); /* already past */
  ck_assert_int_eq(otlp_push_retry_after("soon", 0, &ms), -1);
  ck_assert_int_eq(otlp_push_retry_after("5s", 0, &ms), -1);
  const long retried[] = {429, 502, 503, 504};
  for(size_t i = 0; i < 4; i++)
    ck_assert(otlp_push_retryable(retried[i]));
  const long not_retried[] = {400, 401, 403, 404, 413, 500, 501, 200};
  for(size_t i = 0; i < 8; i++)
    ck_assert(!otlp_push_retryable(not_retried[i]));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("otlp_push");
  TCase *tc = tcase_create("config");
  tcase_add_test(tc, endpoints);
  tcase_add_test(tc, headers_and_settings);
  tcase_add_test(tc, retry_rules);
  suite_add_tcase(s, tc);
  return check_run(s);
}
