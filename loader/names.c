/* SPDX-License-Identifier: MIT */
/*
 * names.c - the one rule for names (names.h), applied on every way a name
 * comes in: a request path, a directory or file found by the scan or
 * reported by inotify, a global module's key, options.global_name; and
 * the rule for request kinds (a module's and options.request_kind).  Every
 * key or path the loader builds from names is built here, bounded by the
 * size of its buffer.  Request paths are untrusted: hm__path_check is the
 * first gate, before any file is touched.  Messages quote only the bytes
 * already checked (and hm__fail escapes what it stores besides).  Fuzzed
 * (tests/fuzz/fuzz_path.c, fuzz_key.c).
 */
#include "common.h"

#include <string.h>
#include "fault.h" /* last: see fault.h */

bool hm__segment_ok(const char *name)
{
	return hm__segment_okn(name, strnlen(name, HM__SEGMENT_MAX + 1));
}

bool hm__global_name_ok(const char *name)
{
	return hm__name_why_n(name, strnlen(name, HM__NAME_MAX + 1), HM__NAME_MAX) == 0;
}

bool hm__request_kind_okn(const char *kind, size_t n)
{
	if (n == 0 || n > HM_REQUEST_KIND_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)kind[i] < 0x21 || (unsigned char)kind[i] > 0x7e)
			return false;
	return true;
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
			if (i - seg_start > HM__SEGMENT_MAX)
				return hm__fail(HM_EBADPATH,
					"module path: segment longer than %d bytes",
					HM__SEGMENT_MAX);
			if (i < len && ++segments > HM__SEGMENTS_MAX)
				return hm__fail(HM_EBADPATH,
					"module path: more than %d segments",
					HM__SEGMENTS_MAX);
			last_start = seg_start;
			seg_start = i + 1;
		} else if (!hm__name_char(c)) {
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

/* The segments of dir[0..len) ("" or "a/b/"), or -1 if it is not a
 * directory a request could name a file in. */
static int hm__dir_segments(const char *dir, size_t len)
{
	int n = 0;

	if (len == 0)
		return 0;
	if (len > HM__DIR_MAX || dir[len - 1] != '/')
		return -1;
	for (size_t start = 0; start < len; n++) {
		const char *slash = memchr(dir + start, '/', len - start);
		size_t end = (size_t)(slash - dir);
		if (!hm__segment_okn(dir + start, end - start) || n + 1 > HM__SEGMENTS_MAX - 1)
			return -1;
		start = end + 1;
	}
	return n;
}

bool hm__dir_ok(const char *dir, size_t len)
{
	return hm__dir_segments(dir, len) >= 0;
}

const char *hm__name_why(int why)
{
	switch (why) {
	case HM__NAME_BYTE:
		return "a request cannot name it: a name is [A-Za-z0-9._-], not starting "
		       "with '.'";
	case HM__NAME_LONG:
		return "a request cannot name it: a name is at most " HM__NUM(
			HM__SEGMENT_MAX) " bytes (without \".so\")";
	case HM__NAME_PATH:
		return "a request cannot name it: a path is at most " HM__NUM(
			HM__PATH_MAX) " bytes (without \".so\")";
	case HM__NAME_DEEP:
		return "a request cannot name it: a path has at most " HM__NUM(
			HM__SEGMENTS_MAX) " segments";
	case HM__NAME_NOROOM:
		return "longer than its buffer";
	case HM__NAME_DIR:
		return "in a directory that is not served";
	default:
		return "not a module";
	}
}

/*
 * Is name[0..n) in dir (dir_segs segments, dir_len bytes, checked) a file
 * a request could name, or the global module?  Its kind, or why not.
 */
static int hm__name_kind(size_t dir_len, int dir_segs, const char *name, size_t n,
	const char *global_name)
{
	int kind = hm__file_name_kind(name, n, global_name);

	if (kind != HM__KEY_MODULE)
		return kind;
	if (dir_segs + 1 > HM__SEGMENTS_MAX)
		return HM__NAME_DEEP;
	if (dir_len + n - 3 > HM__PATH_MAX)
		return HM__NAME_PATH;
	return HM__KEY_MODULE;
}

int hm__key_kind(const char *key, size_t len, const char *global_name)
{
	const char *slash = memrchr(key, '/', len);
	size_t dir_len = slash ? (size_t)(slash - key) + 1 : 0;
	int segs = hm__dir_segments(key, dir_len);

	if (segs < 0)
		return HM__NAME_DIR;
	return hm__name_kind(dir_len, segs, key + dir_len, len - dir_len, global_name);
}

/* out = dir, name and then tail ("/", ".so" or ""); its length, or
 * HM__NAME_NOROOM. */
static int hm__join(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name, size_t n, const char *tail)
{
	size_t t = strlen(tail);

	if (dir_len + n + t + 1 > size)
		return HM__NAME_NOROOM;
	memcpy(out, dir, dir_len);
	memcpy(out + dir_len, name, n);
	memcpy(out + dir_len + n, tail, t + 1);
	return (int)(dir_len + n + t);
}

int hm__subdir_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name)
{
	size_t n = strnlen(name, HM__NAME_MAX + 1);
	int segs = hm__dir_segments(dir, dir_len), why;

	if (segs < 0)
		return HM__NAME_DIR;
	if ((why = hm__segment_why(name, n)) < 0)
		return why;
	if (segs + 1 > HM__SEGMENTS_MAX - 1)
		return HM__NAME_DEEP;
	if (dir_len + n + 1 > HM__DIR_MAX)
		return HM__NAME_PATH;
	return hm__join(out, size, dir, dir_len, name, n, "/");
}

int hm__file_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name, const char *global_name, int *kind)
{
	size_t n = strnlen(name, HM__NAME_MAX + 1);
	int segs = hm__dir_segments(dir, dir_len);

	if (segs < 0)
		return HM__NAME_DIR;
	if ((*kind = hm__name_kind(dir_len, segs, name, n, global_name)) < 0)
		return *kind;
	return hm__join(out, size, dir, dir_len, name, n, "");
}

int hm__global_key(char *out, size_t size, const char *key, size_t len,
	const char *global_name)
{
	const char *slash = memrchr(key, '/', len);
	size_t dir_len = slash ? (size_t)(slash - key) + 1 : 0;
	size_t glen = strnlen(global_name, HM__NAME_MAX + 1);

	if (hm__dir_segments(key, dir_len) < 0)
		return HM__NAME_DIR;
	if (glen > HM__NAME_MAX)
		return HM__NAME_LONG;
	return hm__join(out, size, key, dir_len, global_name, glen, "");
}

int hm__path_key(char *out, size_t size, const char *path, size_t len)
{
	if (len > HM__PATH_MAX)
		return HM__NAME_PATH;
	return hm__join(out, size, path, len, "", 0, ".so");
}
