/* test_jbuf.c — Check suite for server/jbuf.c and server/arena.c: the ceiling is enforced and
 * sticky, JSON escaping of every control character, integers at the extremes, doubles trimmed,
 * arena copies that outlive their source. */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "jbuf.h"
#include "check_run.h"

START_TEST(ceiling)
{
  jbuf b;
  jbuf_init(&b, 8);
  jbuf_puts(&b, "12345678");
  ck_assert_int_eq(jbuf_status(&b), 0);
  ck_assert_str_eq(b.data, "12345678");
  jbuf_putc(&b, '9');
  ck_assert_int_eq(jbuf_status(&b), LS_ETOOBIG);
  jbuf_puts(&b, ""); /* sticky even for nothing */
  ck_assert_int_eq(jbuf_status(&b), LS_ETOOBIG);
  ck_assert_uint_eq(b.len, 8);
  jbuf_free(&b);
  jbuf_init(&b, 1000);
  jbuf_printf(&b, "%0300d", 7); /* longer than the small stack buffer */
  ck_assert_uint_eq(b.len, 300);
  ck_assert_int_eq(b.data[299], '7');
  size_t len;
  char *p = jbuf_take(&b, &len);
  ck_assert_uint_eq(len, 300);
  ck_assert_ptr_null(b.data);
  free(p);
  jbuf_init(&b, 10);
  jbuf_printf(&b, "%s", "far more than ten bytes");
  ck_assert_int_eq(jbuf_status(&b), LS_ETOOBIG);
  jbuf_free(&b);
}
END_TEST

START_TEST(strings)
{
  jbuf b;
  jbuf_init(&b, 1 << 16);
  jbuf_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh/é");
  ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh/é\"");
  b.len = 0;
  jbuf_str(&b, NULL);
  ck_assert_str_eq(b.data, "null");
  b.len = 0;
  jbuf_strn(&b, "ab\0cd", 5);
  ck_assert_str_eq(b.data, "\"ab\xEF\xBF\xBD" "cd\""); /* stored text never holds U+0000 */
  b.len = 0;
  jbuf_key(&b, "k", 0);
  jbuf_i64(&b, 1);
  jbuf_key(&b, "j", 1);
  jbuf_i64(&b, -2);
  ck_assert_str_eq(b.data, "\"k\":1,\"j\":-2");
  jbuf_free(&b);
}
END_TEST

START_TEST(numbers)
{
  jbuf b;
  jbuf_init(&b, 1 << 16);
  jbuf_i64(&b, INT64_MIN);
  jbuf_putc(&b, ' ');
  jbuf_i64(&b, INT64_MAX);
  jbuf_putc(&b, ' ');
  jbuf_i64(&b, 0);
  ck_assert_str_eq(b.data, "-9223372036854775808 9223372036854775807 0");
  b.len = 0;
  jbuf_f64(&b, 2.3, 6);
  jbuf_putc(&b, ' ');
  jbuf_f64(&b, 10.0, 6);
  jbuf_putc(&b, ' ');
  jbuf_f64(&b, 0.0000004, 6);
  jbuf_putc(&b, ' ');
  jbuf_f64(&b, -0.0000001, 6);
  jbuf_putc(&b, ' ');
  jbuf_f64(&b, 1.0 / 0.0, 6);
  jbuf_putc(&b, ' ');
  jbuf_f64(&b, 0.123456789, 6);
  ck_assert_str_eq(b.data, "2.3 10 0 0 0 0.123457");
  jbuf_free(&b);
}
END_TEST

START_TEST(arena_copies)
{
  arena a;
  arena_init(&a);
  char src[16] = "hello";
  const char *p = arena_strndup(&a, src, 5);
  strcpy(src, "xxxxx");
  ck_assert_str_eq(p, "hello");
  ck_assert_ptr_null(arena_strndup(&a, NULL, 3));
  /* a string larger than a block gets its own and the current block keeps filling */
  size_t big = 200 * 1024;
  char *large = malloc(big);
  memset(large, 'z', big);
  const char *q = arena_strndup(&a, large, big);
  ck_assert_uint_eq(strlen(q), big);
  const char *r = arena_strndup(&a, "after", 5);
  ck_assert_str_eq(r, "after");
  for(int i = 0; i < 10000; i++)
    ck_assert_ptr_nonnull(arena_strndup(&a, "0123456789", 10));
  ck_assert_int_eq(a.failed, 0);
  free(large);
  /* objects come aligned for anything, also right after an odd-sized string */
  for(size_t n = 1; n < 200; n += 7) {
    arena_strndup(&a, "abc", n % 5);
    void *o = arena_alloc(&a, n);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq((uintptr_t)o % _Alignof(max_align_t), 0);
    memset(o, 1, n);
  }
  ck_assert_ptr_nonnull(arena_alloc(&a, 0));
  void *huge = arena_alloc(&a, 300 * 1024);
  ck_assert_ptr_nonnull(huge);
  ck_assert_uint_eq((uintptr_t)huge % _Alignof(max_align_t), 0);
  arena_free(&a);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("jbuf");
  TCase *tc = tcase_create("jbuf");
  tcase_add_test(tc, ceiling);
  tcase_add_test(tc, strings);
  tcase_add_test(tc, numbers);
  tcase_add_test(tc, arena_copies);
  suite_add_tcase(s, tc);
  return check_run(s);
}
