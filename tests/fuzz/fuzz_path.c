/* SPDX-License-Identifier: MIT */
/*
 * fuzz_path.c - libFuzzer target for the request path check, the first gate
 * an untrusted request path meets (loader/names.c).
 *
 * Every input, NUL bytes included, is a path of that many bytes.  The
 * verdict of hm__path_check() is compared with a second, independent
 * reading of the rule (split on '/', then look at each segment), and an
 * accepted path must hold every invariant the rest of the loader relies
 * on: no "..", no empty segment, no segment starting with '.', only
 * [A-Za-z0-9._-] and '/', within the length limits, not the global module.
 * A refused path must get HM_EBADPATH and a message of printable ASCII (it
 * goes into logs).  The same bytes, up to the first NUL, are also a
 * directory name for hm__segment_ok() (the watcher skips directories no
 * request could name), which must judge them as the rule judges a path of
 * one segment.  Any difference aborts: libFuzzer reports it as a crash.
 *
 * Built by "make fuzz" with the loader's sources compiled in (the function
 * is hidden in the shared library).
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char global_name[] = "_global.so";

static void fail(const char *why, const uint8_t *p, size_t len, int rc)
{
	fprintf(stderr, "fuzz_path: %s (rc %d, %zu bytes, message \"%s\")\n", why, rc,
		len, hm_errmsg());
	for (size_t i = 0; i < len && i < 200; i++)
		fprintf(stderr, "%02x", p[i]);
	fputc('\n', stderr);
	abort();
}

static bool allowed(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* The rule as the documentation states it, written another way. */
static bool model_accepts(const uint8_t *p, size_t len)
{
	size_t nseg = 0, start = 0, last = 0;

	if (len == 0 || len > HM__PATH_MAX)
		return false;
	while (start <= len) {
		const uint8_t *slash = memchr(p + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - p) : len;
		size_t seglen = end - start;

		if (seglen == 0 || seglen > 250 || p[start] == '.')
			return false;
		for (size_t i = start; i < end; i++)
			if (!allowed(p[i]))
				return false;
		if (++nseg > HM__SEGMENTS_MAX)
			return false;
		last = start;
		if (!slash)
			break;
		start = end + 1;
	}
	/* The last segment + ".so" must not be the global module's name. */
	size_t last_len = len - last;
	if (last_len + 3 == strlen(global_name) &&
	    memcmp(p + last, global_name, last_len) == 0 &&
	    strcmp(global_name + last_len, ".so") == 0)
		return false;
	return true;
}

/* One segment of a path, as the rule states it. */
static bool model_segment(const uint8_t *p, size_t len)
{
	if (len == 0 || len > 250 || p[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!allowed(p[i]))
			return false;
	return true;
}

/* What the rest of the loader assumes of an accepted path, checked bare. */
static void check_accepted(const uint8_t *p, size_t len)
{
	size_t seg = 0, nseg = 1;

	if (len == 0 || len > HM__PATH_MAX)
		fail("accepted a path of a bad length", p, len, 0);
	if (p[0] == '/' || p[len - 1] == '/')
		fail("accepted a leading or trailing '/'", p, len, 0);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '/') {
			if (i == seg)
				fail("accepted an empty segment", p, len, 0);
			if (++nseg > HM__SEGMENTS_MAX)
				fail("accepted too many segments", p, len, 0);
			seg = i + 1;
			continue;
		}
		if (!allowed(p[i]))
			fail("accepted a byte outside [A-Za-z0-9._-/]", p, len, 0);
		if (i == seg && p[i] == '.')
			fail("accepted a segment starting with '.' (\".\", \"..\", hidden)", p,
				len, 0);
		if (i - seg >= 250)
			fail("accepted a segment longer than 250 bytes", p, len, 0);
	}
	if (len - seg == 7 && memcmp(p + seg, "_global", 7) == 0)
		fail("accepted the global module's name", p, len, 0);
}

static void check_segment(const uint8_t *data, size_t size)
{
	char name[HM__PATH_MAX + 1];
	const uint8_t *nul = memchr(data, '\0', size);
	size_t len = nul ? (size_t)(nul - data) : size;

	if (len > HM__PATH_MAX)
		return;
	memcpy(name, data, len);
	name[len] = '\0';
	if (hm__segment_ok(name) != model_segment(data, len))
		fail(hm__segment_ok(name) ? "hm__segment_ok accepted what the rule refuses" :
					    "hm__segment_ok refused what the rule accepts",
			data, len, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc = hm__path_check((const char *)data, size, global_name);
	bool model = model_accepts(data, size);

	check_segment(data, size);

	if (rc == 0) {
		check_accepted(data, size);
		if (!model)
			fail("accepted a path the rule refuses", data, size, rc);
		return 0;
	}
	if (rc != HM_EBADPATH)
		fail("refused with a code other than HM_EBADPATH", data, size, rc);
	if (model)
		fail("refused a path the rule accepts", data, size, rc);
	/* The message quotes only checked bytes: no control character, no
	 * byte >= 0x80 can reach a log through it. */
	const char *msg = hm_errmsg();
	if (!*msg || strstr(msg, "module path") == NULL)
		fail("refused without saying why", data, size, rc);
	for (const char *m = msg; *m; m++)
		if ((unsigned char)*m < 0x20 || (unsigned char)*m >= 0x7f)
			fail("message holds a byte that is not printable ASCII", data, size, rc);
	return 0;
}
