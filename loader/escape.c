/* SPDX-License-Identifier: MIT */
/*
 * escape.c - untrusted text made safe for a log line or a terminal
 * (names.h).  File names, dlerror() text and module messages may hold any
 * byte: a newline would forge a log line, ESC or a C1 control would drive
 * the operator's terminal.  Compiled into the library, hotmod-httpd and
 * the hotmod tool.  Makes no fallible call (no fault.h).  Fuzzed
 * (tests/fuzz/fuzz_escape.c).
 */
#include "names.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * The length of the UTF-8 sequence at p (n bytes left) and its code point,
 * or 0 when it is not valid UTF-8 (RFC 3629): a stray continuation byte, a
 * cut sequence, an overlong form, a surrogate, or beyond U+10FFFF.
 */
static size_t hm__utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned c = p[0];
	uint32_t v, min;
	size_t len;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[k] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Characters that are valid but control a terminal or the look of a line. */
static bool hm__control_cp(uint32_t cp)
{
	return cp < 0xa0 ||                     /* C1 */
	       cp == 0x2028 || cp == 0x2029 ||  /* line, paragraph separator */
	       cp == 0x200e || cp == 0x200f ||  /* LRM, RLM */
	       (cp >= 0x202a && cp <= 0x202e) || /* embeddings, overrides */
	       (cp >= 0x2066 && cp <= 0x2069);   /* isolates */
}

size_t hm__escape(char *dst, size_t size, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;

	if (size == 0)
		return 0;
	while (i < len) {
		char tmp[8];
		size_t tn, adv = 1;
		unsigned c = s[i];
		uint32_t cp;

		if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			tn = 1;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			tmp[0] = '\\';
			tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			tn = 2;
		} else if (c < 0x80 || (adv = hm__utf8(s + i, len - i, &cp)) == 0) {
			adv = 1;
			tn = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
		} else if (hm__control_cp(cp)) {
			tn = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp);
		} else {
			memcpy(tmp, s + i, adv);
			tn = adv;
		}
		if (tn >= size - o) /* it and the NUL must fit */
			break;
		memcpy(dst + o, tmp, tn);
		o += tn;
		i += adv;
	}
	dst[o] = '\0';
	return o;
}
