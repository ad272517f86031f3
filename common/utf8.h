/* utf8.h — the one UTF-8 validator of loopscope, shared by the server (server/ingest.c refuses
 * invalid strings) and the collector (collector/src replaces invalid bytes with U+FFFD): both
 * ask the same function, so what one side sends the other accepts. No allocation, no I/O. */
#ifndef LS_COMMON_UTF8_H
#define LS_COMMON_UTF8_H

#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence that starts at s, looking at no more than n
 * bytes (n >= 1), or 0 when the bytes there are not one: a continuation byte first, C0/C1 or
 * F5..FF leads (overlong two-byte forms, 5/6-byte leads), overlong three/four-byte forms,
 * surrogates U+D800..DFFF, code points above U+10FFFF, or a sequence cut short by n.
 * This is the Unicode standard's table 3-7 of well-formed byte sequences, nothing looser. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* 1 when the n bytes at s are well-formed UTF-8 throughout (NUL is a valid character here;
 * callers that refuse it say so themselves), else 0. */
int utf8_valid(const char *s, size_t n);

/* The length of the n bytes at s once cleaned as the collector cleans text (dynbuf_text,
 * dynbuf_json_str): every NUL and every byte that starts no well-formed sequence becomes U+FFFD,
 * three bytes. n when there is nothing to clean. */
size_t utf8_clean_len(const char *s, size_t n);

#endif
