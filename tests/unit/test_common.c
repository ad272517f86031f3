/* test_common.c — Check suite for common/ (the C the server and the collector share): the UTF-8
 * validator over the one table in tests/data/utf8_cases.txt, also inside longer strings; the
 * JSON escaper copying exactly the well-formed sequences; the bounded buffer's ceiling, its
 * sticky failure codes (too big, out of memory, bad format) and its integers at their limits. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "dynbuf.h"
#include "utf8.h"
#include "utf8_cases.h"

/* The out-of-memory test asks realloc for more than exists; under ASan it must answer NULL as
 * the C library does instead of stopping the program. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
  return "allocator_may_return_null=1";
}

static utf8_case cases[128];
static size_t ncases;

static void load(void)
{
  ncases = utf8_cases_load(cases, sizeof cases / sizeof cases[0]);
}

START_TEST(validator_follows_the_table)
{
  size_t valid = 0;
  for(size_t i = 0; i < ncases; i++) {
    const utf8_case *c = &cases[i];
    ck_assert_msg(utf8_valid((const char *)c->bytes, c->n) == c->valid, "utf8_valid: %s", c->what);
    valid += (size_t)c->valid;
    /* between ASCII neighbours the verdict stays: no sequence borrows or lends a byte */
    unsigned char wrapped[20] = "x";
    memcpy(wrapped + 1, c->bytes, c->n);
    wrapped[c->n + 1] = 'y';
    ck_assert_msg(utf8_valid((const char *)wrapped, c->n + 2) == c->valid, "wrapped: %s", c->what);
    /* the sequence length agrees with the verdict for one-character cases */
    size_t k = utf8_seq_len(c->bytes, c->n);
    if(!c->valid)
      ck_assert_msg(k < c->n || k == 0, "utf8_seq_len took all of an invalid case: %s", c->what);
    else
      ck_assert_msg(k >= 1 && k <= c->n, "utf8_seq_len: %s", c->what);
  }
  /* the table has both kinds in numbers (a table of one kind proves little) */
  ck_assert_uint_ge(valid, 10);
  ck_assert_uint_ge(ncases - valid, 25);
  ck_assert_int_eq(utf8_valid("", 0), 1);
}
END_TEST

/* Every byte value as a lead with every continuation pattern: the validator's verdict on two
 * bytes matches the rule written out longhand here (lead C2..DF, then 80..BF). */
START_TEST(two_byte_forms_exhaustively)
{
  for(unsigned a = 0x80; a < 0x100; a++)
    for(unsigned b = 0; b < 0x100; b++) {
      unsigned char s[2] = {(unsigned char)a, (unsigned char)b};
      int want = a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF;
      ck_assert_msg(utf8_valid((const char *)s, 2) == want, "%02x %02x", a, b);
    }
}
END_TEST

START_TEST(json_str_copies_exactly_the_valid_sequences)
{
  for(size_t i = 0; i < ncases; i++) {
    const utf8_case *c = &cases[i];
    dynbuf b;
    dynbuf_init(&b, 1 << 10);
    dynbuf_json_str(&b, (const char *)c->bytes, c->n);
    ck_assert_int_eq(b.failed, 0);
    ck_assert_msg(utf8_valid(b.data, b.len), "escaped output is not UTF-8: %s", c->what);
    int has_fffd = strstr(b.data, "\xEF\xBF\xBD") != NULL;
    if(c->valid && c->bytes[0] >= 0x20) { /* no escaping needed: copied byte for byte */
      ck_assert_uint_eq(b.len, c->n + 2);
      ck_assert_msg(memcmp(b.data + 1, c->bytes, c->n) == 0, "changed: %s", c->what);
    }
    else if(!c->valid)
      ck_assert_msg(has_fffd, "invalid bytes kept: %s", c->what);
    dynbuf_free(&b);
  }
}
END_TEST

/* dynbuf_text cleans as dynbuf_json_str does, without escaping: for every case of the table its
 * output is utf8_clean_len bytes of UTF-8 without NUL, a valid case's bytes unchanged; and for
 * text that needs no escaping it is exactly dynbuf_json_str's output inside the quotes. */
START_TEST(text_cleans_as_json_str_does)
{
  for(size_t i = 0; i < ncases; i++) {
    const utf8_case *c = &cases[i];
    dynbuf t, j;
    dynbuf_init(&t, 1 << 10);
    dynbuf_init(&j, 1 << 10);
    dynbuf_text(&t, (const char *)c->bytes, c->n);
    dynbuf_json_str(&j, (const char *)c->bytes, c->n);
    ck_assert_uint_eq(t.len, utf8_clean_len((const char *)c->bytes, c->n));
    ck_assert_msg(utf8_valid(t.data, t.len) && !memchr(t.data, 0, t.len), "not clean: %s", c->what);
    if(c->valid && !memchr(c->bytes, 0, c->n))
      ck_assert_msg(t.len == c->n && !memcmp(t.data, c->bytes, c->n), "changed: %s", c->what);
    int plain = 1; /* nothing JSON escapes: then both say the same */
    for(size_t k = 0; k < c->n; k++)
      plain &= (c->bytes[k] >= 0x20 || c->bytes[k] == 0) && c->bytes[k] != '"' && c->bytes[k] != '\\';
    if(plain)
      ck_assert_msg(j.len == t.len + 2 && !memcmp(j.data + 1, t.data, t.len), "differs from JSON: %s", c->what);
    dynbuf_free(&t);
    dynbuf_free(&j);
  }
  dynbuf t;
  dynbuf_init(&t, 1 << 10);
  dynbuf_text(&t, "a\0b\xC0\xAF-\xE2\x82", 8);
  ck_assert_str_eq(t.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD-\xEF\xBF\xBD\xEF\xBF\xBD");
  ck_assert_uint_eq(utf8_clean_len("a\0b\xC0\xAF-\xE2\x82", 8), t.len);
  dynbuf_free(&t);
}
END_TEST

START_TEST(json_str_escapes)
{
  dynbuf b;
  dynbuf_init(&b, 1 << 10);
  dynbuf_json_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh/\x7f", 17);
  ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh/\x7f\"");
  dynbuf_reset(&b);
  dynbuf_json_str(&b, "nul\0in", 6);
  ck_assert_str_eq(b.data, "\"nul\xEF\xBF\xBDin\""); /* no U+0000 in ingest text */
  dynbuf_reset(&b);
  /* one U+FFFD per byte that starts nothing: C0 AF is two of them, a cut E2 82 two more */
  dynbuf_json_str(&b, "\xC0\xAF-\xE2\x82", 5);
  ck_assert_str_eq(b.data, "\"\xEF\xBF\xBD\xEF\xBF\xBD-\xEF\xBF\xBD\xEF\xBF\xBD\"");
  dynbuf_free(&b);
}
END_TEST

START_TEST(buffer_ceiling_is_sticky)
{
  dynbuf b;
  dynbuf_init(&b, 8);
  dynbuf_puts(&b, "12345678");
  ck_assert_int_eq(b.failed, DYNBUF_OK);
  ck_assert_str_eq(b.data, "12345678");
  ck_assert_uint_le(b.cap, 9); /* never allocates past what the ceiling can use */
  dynbuf_putc(&b, '9');
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  ck_assert_uint_eq(b.len, 8);
  dynbuf_puts(&b, ""); /* refused even for nothing: the first failure stands */
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  ck_assert_str_eq(b.data, "12345678");
  dynbuf_free(&b);
  ck_assert_ptr_null(b.data);

  dynbuf_init(&b, 0); /* a zero ceiling holds nothing */
  dynbuf_putc(&b, 'x');
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  dynbuf_free(&b);

  /* a ceiling of SIZE_MAX: len + n + 1 would wrap; refused as too big, not as a tiny realloc */
  dynbuf_init(&b, SIZE_MAX);
  dynbuf_puts(&b, "ab");
  volatile size_t huge = SIZE_MAX - 2; /* volatile: the compiler would refuse the constant */
  dynbuf_append(&b, "c", huge);
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  ck_assert_str_eq(b.data, "ab");
  dynbuf_free(&b);
}
END_TEST

START_TEST(buffer_out_of_memory_is_reported)
{
  dynbuf b;
  dynbuf_init(&b, SIZE_MAX - 1);
  dynbuf_puts(&b, "kept");
  /* 1 EiB: beyond any address space, so realloc fails whatever the overcommit policy; not near
   * SIZE_MAX, which valgrind reports as a "fishy" (negative) size */
  dynbuf_grow(&b, (size_t)1 << 60);
  ck_assert_int_eq(b.failed, DYNBUF_ENOMEM);
  ck_assert_str_eq(b.data, "kept"); /* what was there stays, freeable */
  dynbuf_puts(&b, "more");
  ck_assert_uint_eq(b.len, 4);
  dynbuf_free(&b);
}
END_TEST

START_TEST(buffer_take_reset_grow_printf)
{
  dynbuf b;
  dynbuf_init(&b, 1000);
  size_t len = 99;
  ck_assert_ptr_null(dynbuf_take(&b, &len)); /* nothing appended yet */
  ck_assert_uint_eq(len, 0);
  dynbuf_grow(&b, 500);
  ck_assert_uint_ge(b.cap, 501);
  size_t cap = b.cap;
  dynbuf_printf(&b, "%0300d", 7); /* longer than the formatter's stack buffer */
  ck_assert_uint_eq(b.len, 300);
  ck_assert_uint_eq(b.cap, cap); /* grown once, up front */
  dynbuf_reset(&b);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_str_eq(b.data, "");
  dynbuf_printf(&b, "%s=%d", "k", 5);
  char *p = dynbuf_take(&b, &len);
  ck_assert_str_eq(p, "k=5");
  ck_assert_uint_eq(len, 3);
  ck_assert_ptr_null(b.data);
  free(p);
  dynbuf_grow(&b, SIZE_MAX); /* clamped to the ceiling, not refused */
  ck_assert_int_eq(b.failed, 0);
  ck_assert_uint_eq(b.cap, 1001);
  dynbuf_free(&b);
  dynbuf_init(&b, 10);
  dynbuf_printf(&b, "%s", "far more than ten bytes and past the small buffer too, so the slow path"
                            " of printf meets the ceiling: 0123456789012345678901234567890123456789"
                            "012345678901234567890123456789012345678901234567890123456789012345678"
                            "9012345678901234567890123456789012345678901234567890123456789");
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  dynbuf_free(&b);
}
END_TEST

START_TEST(buffer_integers_at_their_limits)
{
  dynbuf b;
  dynbuf_init(&b, 1 << 10);
  dynbuf_u64(&b, 0);
  dynbuf_putc(&b, ' ');
  dynbuf_u64(&b, UINT64_MAX);
  dynbuf_putc(&b, ' ');
  dynbuf_i64(&b, INT64_MIN);
  dynbuf_putc(&b, ' ');
  dynbuf_i64(&b, INT64_MAX);
  dynbuf_putc(&b, ' ');
  dynbuf_i64(&b, -1);
  ck_assert_str_eq(b.data, "0 18446744073709551615 -9223372036854775808 9223372036854775807 -1");
  dynbuf_free(&b);
  /* every power of ten and its neighbours, every count of digits, as printf writes them */
  for(uint64_t p10 = 1, k = 0; k < 20; k++, p10 *= 10) {
    uint64_t vals[3] = {p10 - 1, p10, p10 + 1};
    for(int i = 0; i < 3; i++) {
      char want[32];
      snprintf(want, sizeof(want), "%llu", (unsigned long long)vals[i]);
      dynbuf_init(&b, 64);
      dynbuf_u64(&b, vals[i]);
      ck_assert_str_eq(b.data, want);
      dynbuf_free(&b);
    }
  }
  /* every pair of digits in every place, written in place after the first (the buffer has room) */
  static char want[1 << 20];
  size_t wn = 0;
  dynbuf_init(&b, sizeof(want));
  for(uint64_t v = 0; v < 100000; v += 7) {
    uint64_t x = v * 1000003 + (v & 1 ? (uint64_t)1 << 40 : 0);
    wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%llu,", (unsigned long long)x);
    dynbuf_u64(&b, x);
    dynbuf_putc(&b, ',');
  }
  ck_assert_str_eq(b.data, want);
  dynbuf_free(&b);
  /* exactly at the ceiling, then one digit past it: refused, nothing written */
  dynbuf_init(&b, 6);
  dynbuf_putc(&b, 'x');
  dynbuf_u64(&b, 12345);
  ck_assert_str_eq(b.data, "x12345");
  dynbuf_u64(&b, 7);
  ck_assert_int_eq(b.failed, DYNBUF_ETOOBIG);
  ck_assert_str_eq(b.data, "x12345");
  dynbuf_free(&b);
}
END_TEST

static Suite *common_suite(void)
{
  Suite *s = suite_create("common");
  TCase *c = tcase_create("utf8");
  tcase_add_unchecked_fixture(c, load, NULL);
  tcase_add_test(c, validator_follows_the_table);
  tcase_add_test(c, two_byte_forms_exhaustively);
  tcase_add_test(c, json_str_copies_exactly_the_valid_sequences);
  tcase_add_test(c, json_str_escapes);
  tcase_add_test(c, text_cleans_as_json_str_does);
  suite_add_tcase(s, c);
  c = tcase_create("dynbuf");
  tcase_add_test(c, buffer_ceiling_is_sticky);
  tcase_add_test(c, buffer_out_of_memory_is_reported);
  tcase_add_test(c, buffer_take_reset_grow_printf);
  tcase_add_test(c, buffer_integers_at_their_limits);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(common_suite());
}
