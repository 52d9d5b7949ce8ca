/* SPDX-License-Identifier: MIT */
/*
 * fuzz_escape.c - libFuzzer target for hm__escape() (loader/escape.c), the
 * one escaping of every message the library stores or logs, of
 * hotmod-httpd's log and of the hotmod tool's output.
 *
 * Any bytes, NUL included.  The output must hold no C0 byte, no DEL, no C1
 * control (raw or as UTF-8) and be valid UTF-8 (checked here with a decoder
 * of its own, overlong forms and surrogates included); escaping it again
 * must change nothing; and for an input without a backslash, undoing the
 * escapes must give the input back.  Cut to a buffer of a size the input
 * chooses, the output must be a prefix of the whole one that ends between
 * escapes and characters, never inside one.  Any difference aborts.
 */
#include "names.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why, const uint8_t *in, size_t n, const char *out)
{
	fprintf(stderr, "fuzz_escape: %s\n", why);
	for (size_t i = 0; i < n && i < 300; i++)
		fprintf(stderr, "%02x", in[i]);
	fprintf(stderr, "\nout: %s\n", out);
	abort();
}

/* Valid UTF-8 of characters that are not controls, or false. */
static bool clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		size_t n;
		if (*p < 0x80) {
			if (*p < 0x20 || *p == 0x7f)
				return false;
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0)
			n = 2, cp = *p & 0x1f;
		else if ((*p & 0xf0) == 0xe0)
			n = 3, cp = *p & 0x0f;
		else if ((*p & 0xf8) == 0xf0)
			n = 4, cp = *p & 0x07;
		else
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((p[k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0 ||
		    cp == 0x2028 || cp == 0x2029)
			return false;
		p += n;
	}
	return true;
}

static int hex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Undo the escapes of s into out; its length, or -1 for a broken escape. */
static long unescape(const char *s, unsigned char *out)
{
	size_t o = 0;

	for (; *s; s++) {
		if (*s != '\\') {
			out[o++] = (unsigned char)*s;
			continue;
		}
		s++;
		if (*s == 'n' || *s == 'r' || *s == 't') {
			out[o++] = *s == 'n' ? '\n' : *s == 'r' ? '\r' : '\t';
		} else if (*s == 'x' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
			out[o++] = (unsigned char)(hex(s[1]) << 4 | hex(s[2]));
			s += 2;
		} else if (*s == 'u' && hex(s[1]) >= 0 && hex(s[2]) >= 0 && hex(s[3]) >= 0 &&
			   hex(s[4]) >= 0) {
			unsigned cp = (unsigned)(hex(s[1]) << 12 | hex(s[2]) << 8 | hex(s[3]) << 4 |
						 hex(s[4]));
			if (cp < 0x800) {
				out[o++] = (unsigned char)(0xc0 | cp >> 6);
			} else {
				out[o++] = (unsigned char)(0xe0 | cp >> 12);
				out[o++] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			}
			out[o++] = (unsigned char)(0x80 | (cp & 0x3f));
			s += 4;
		} else {
			return -1;
		}
	}
	return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = 6 * size + 1; /* at most \uHHHH for two bytes, \xHH for one */
	char *out = malloc(cap), *twice = malloc(cap);
	unsigned char *back = malloc(size + 1);
	bool has_backslash = memchr(data, '\\', size) != NULL;

	size_t n = hm__escape(out, cap, (const char *)data, size);
	if (n != strlen(out))
		fail("the length returned is not the length written", data, size, out);
	if (!clean(out))
		fail("the output holds a control or is not valid UTF-8", data, size, out);
	if (hm__escape(twice, cap, out, n) != n || strcmp(twice, out) != 0)
		fail("escaping twice changed it", data, size, out);
	if (!has_backslash) {
		long b = unescape(out, back);
		if (b != (long)size || memcmp(back, data, size) != 0)
			fail("undoing the escapes does not give the input back", data, size, out);
	}
	/* Cut: a size chosen by the input, the buffer exactly that size. */
	size_t cut = size ? data[0] % (n + 2) : 0;
	char *small = malloc(cut ? cut : 1);
	size_t m = hm__escape(small, cut, (const char *)data, size);
	if (cut > 0 && (m >= cut || m > n || memcmp(small, out, m) != 0 || small[m] != '\0'))
		fail("a cut output is not a prefix of the whole one", data, size, out);
	if (cut > 0 && !has_backslash) {
		long b = unescape(small, back);
		if (b < 0 || memcmp(back, data, (size_t)b) != 0 || !clean(small))
			fail("a cut output ends inside an escape or a character", data, size, out);
	}
	free(small);
	free(out);
	free(twice);
	free(back);
	return 0;
}
