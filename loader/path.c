/*
 * path.c - the request path check.  Messages quote only the bytes already
 * checked, so a hostile path cannot put control characters into a log.  Request paths are untrusted: this is
 * the first gate, before any file is touched.  Fuzzed (tests/fuzz).
 */
#include "internal.h"

#include <string.h>
#include "fault.h" /* last: see fault.h */

static bool hm__segment_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

bool hm__segment_ok(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++)
		if (!hm__segment_char((unsigned char)name[n]))
			return false;
	return n > 0 && n <= 250 && name[0] != '.';
}

int hm__path_check(const char *p, size_t len, const char *global_name)
{
	size_t seg_start = 0, last_start = 0, segments = 1;

	if (len == 0)
		return hm__fail(HM_EBADPATH, "empty module path");
	if (len > HM__PATH_MAX)
		return hm__fail(HM_EBADPATH, "module path longer than %d bytes",
			HM__PATH_MAX);
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)p[i] : '/';

		if (c == '/') {
			if (i == seg_start)
				return hm__fail(HM_EBADPATH,
					"module path \"%.*s\": empty segment at byte %zu",
					(int)i, p, i);
			if (p[seg_start] == '.')
				return hm__fail(HM_EBADPATH,
					"module path \"%.*s\": segment starts with '.'",
					(int)i, p);
			/* room for ".so" in a name of at most NAME_MAX (255) */
			if (i - seg_start > 250)
				return hm__fail(HM_EBADPATH,
					"module path: segment longer than 250 bytes");
			if (i < len && ++segments > HM__SEGMENTS_MAX)
				return hm__fail(HM_EBADPATH,
					"module path: more than %d segments",
					HM__SEGMENTS_MAX);
			last_start = seg_start;
			seg_start = i + 1;
		} else if (!hm__segment_char(c)) {
			return hm__fail(HM_EBADPATH,
				"module path: byte 0x%02x at %zu is not one of "
				"[A-Za-z0-9._-]",
				c, i);
		}
	}
	/* The last segment plus ".so" must not name the global module. */
	size_t last_len = len - last_start, glen = strlen(global_name);
	if (glen == last_len + 3 && memcmp(p + last_start, global_name, last_len) == 0 &&
	    memcmp(global_name + last_len, ".so", 3) == 0)
		return hm__fail(HM_EBADPATH,
			"module path \"%.*s\" names the directory's global module",
			(int)len, p);
	return 0;
}
