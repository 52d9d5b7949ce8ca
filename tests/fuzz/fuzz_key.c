/* SPDX-License-Identifier: MIT */
/*
 * fuzz_key.c - libFuzzer target for every function that builds a key or a
 * path from names (loader/names.c): the subdirectory the scan and the
 * watcher descend into, a file's key in a directory, the global module's
 * key of a module's key, a request path's key, and the kind of a key.
 *
 * The first byte picks the function, the second how many of the following
 * bytes are the name (up to the first NUL, as the names from readdir and
 * inotify are); the rest is the directory, key or path.  Each result is
 * compared with the request path rule, hm__path_check() (itself fuzzed
 * against a second reading in fuzz_path.c): a directory is accepted if and
 * only if a request could name a file in it, a module's key if and only if
 * its path passes as a request path, and so on.  Every builder writes into
 * a buffer of exactly the size it needs, and into one a byte too short
 * (which it must refuse untouched): ASan sees a byte written past either.
 * Any difference aborts.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char global_name[] = "_global.so";

static void fail(const char *why, const char *a, size_t alen, const char *b, size_t blen)
{
	fprintf(stderr, "fuzz_key: %s\n", why);
	for (size_t i = 0; i < alen && i < 300; i++)
		fprintf(stderr, "%02x", (unsigned char)a[i]);
	fprintf(stderr, " | ");
	for (size_t i = 0; i < blen && i < 300; i++)
		fprintf(stderr, "%02x", (unsigned char)b[i]);
	fputc('\n', stderr);
	abort();
}

/* The request rule, silently (hm__path_check sets a message). */
static bool request_ok(const char *p, size_t len)
{
	return hm__path_check(p, len, global_name) == 0;
}

/* A directory a request could name a file in: "" or d + "x" passes. */
static bool model_dir(const char *d, size_t len)
{
	char buf[HM__PATH_MAX + 2];

	if (len == 0)
		return true;
	if (d[len - 1] != '/' || len + 1 > sizeof buf - 1)
		return false;
	memcpy(buf, d, len);
	buf[len] = 'x';
	return request_ok(buf, len + 1);
}

/* The kind of dir + name by the request rule; < 0 for refused. */
static int model_kind(const char *dir, size_t dlen, const char *name, size_t n)
{
	char buf[HM__KEY_MAX + 16];

	if (!model_dir(dir, dlen) || memchr(name, '/', n) || memchr(name, '\0', n))
		return -1;
	if (n == strlen(global_name) && memcmp(name, global_name, n) == 0)
		return HM__KEY_GLOBAL;
	if (n <= 3 || memcmp(name + n - 3, ".so", 3) != 0 || dlen + n > sizeof buf)
		return -1;
	memcpy(buf, dir, dlen);
	memcpy(buf + dlen, name, n - 3);
	return request_ok(buf, dlen + n - 3) ? HM__KEY_MODULE : -1;
}

/*
 * Run build(out, size) into a buffer of exactly want + 1 bytes (it must
 * return want and write expect) and into one of want bytes (it must refuse
 * with HM__NAME_NOROOM and write nothing).
 */
#define CHECK_BUILD(call_with, expect, want)                                   \
	do {                                                                   \
		size_t want_ = (want);                                         \
		char *out_ = malloc(want_ + 1);                                \
		memset(out_, 0x55, want_ + 1);                                 \
		int rc_ = call_with(out_, want_ + 1);                          \
		if (rc_ != (int)want_ || memcmp(out_, (expect), want_) != 0 || \
		    out_[want_] != '\0')                                       \
			fail("built something else", out_, want_ + 1, (expect), want_); \
		if (want_ > 0) {                                               \
			char *short_ = malloc(want_);                          \
			memset(short_, 0x55, want_);                           \
			if (call_with(short_, want_) != HM__NAME_NOROOM)       \
				fail("a short buffer was not refused", short_, want_, \
					(expect), want_);                      \
			for (size_t i_ = 0; i_ < want_; i_++)                  \
				if ((unsigned char)short_[i_] != 0x55)         \
					fail("a refused build wrote", short_, want_, \
						(expect), want_);              \
			free(short_);                                          \
		}                                                              \
		free(out_);                                                    \
	} while (0)

static const char *g_dir, *g_name, *g_key;
static size_t g_dlen, g_klen;

static int build_subdir(char *out, size_t size)
{
	return hm__subdir_key(out, size, g_dir, g_dlen, g_name);
}

static int build_file(char *out, size_t size)
{
	int kind;
	return hm__file_key(out, size, g_dir, g_dlen, g_name, global_name, &kind);
}

static int build_global(char *out, size_t size)
{
	return hm__global_key(out, size, g_key, g_klen, global_name);
}

static int build_path(char *out, size_t size)
{
	return hm__path_key(out, size, g_key, g_klen);
}

static void fuzz_subdir(const char *dir, size_t dlen, const char *name, size_t n)
{
	char joined[HM__KEY_MAX * 2 + 8];
	char out[HM__DIR_MAX + 1];
	bool ok = model_dir(dir, dlen) && dlen + n + 1 < sizeof joined;

	if (ok) {
		memcpy(joined, dir, dlen);
		memcpy(joined + dlen, name, n);
		joined[dlen + n] = '/';
		ok = !memchr(name, '/', n) && model_dir(joined, dlen + n + 1);
	}
	g_dir = dir, g_dlen = dlen, g_name = name;
	int rc = hm__subdir_key(out, sizeof out, dir, dlen, name);
	if ((rc >= 0) != ok)
		fail(ok ? "a directory a request can name was refused" :
			  "a directory no request can name was accepted", dir, dlen, name, n);
	if (ok)
		CHECK_BUILD(build_subdir, joined, dlen + n + 1);
}

static void fuzz_file(const char *dir, size_t dlen, const char *name, size_t n)
{
	char joined[HM__KEY_MAX * 2 + 8], out[HM__KEY_MAX + 1];
	int want = model_kind(dir, dlen, name, n), kind = 0;

	g_dir = dir, g_dlen = dlen, g_name = name;
	int rc = hm__file_key(out, sizeof out, dir, dlen, name, global_name, &kind);
	if ((rc >= 0) != (want >= 0) || (rc >= 0 && kind != want))
		fail(rc >= 0 ? "a file key the request rule refuses was built" :
			       "a file key the request rule accepts was refused", dir, dlen,
			name, n);
	if (rc < 0)
		return;
	if (dlen + n > HM__KEY_MAX)
		fail("a key over HM__KEY_MAX", dir, dlen, name, n);
	memcpy(joined, dir, dlen);
	memcpy(joined + dlen, name, n);
	if (hm__key_kind(joined, dlen + n, global_name) != kind)
		fail("hm__key_kind disagrees with hm__file_key", dir, dlen, name, n);
	CHECK_BUILD(build_file, joined, dlen + n);
}

static void fuzz_key_kind(const char *key, size_t len)
{
	const char *slash = memrchr(key, '/', len);
	size_t dlen = slash ? (size_t)(slash - key) + 1 : 0;
	int kind = hm__key_kind(key, len, global_name);
	int want = model_kind(key, dlen, key + dlen, len - dlen);

	if ((kind >= 0) != (want >= 0) || (kind >= 0 && kind != want))
		fail("hm__key_kind disagrees with the request rule", key, len, "", 0);
	if (kind >= 0 && len > HM__KEY_MAX)
		fail("a key over HM__KEY_MAX", key, len, "", 0);
}

static void fuzz_global(const char *key, size_t len)
{
	char expect[HM__KEY_MAX + 1], out[HM__KEY_MAX + 1];
	const char *slash = memrchr(key, '/', len);
	size_t dlen = slash ? (size_t)(slash - key) + 1 : 0, glen = strlen(global_name);
	bool ok = model_dir(key, dlen);

	g_key = key, g_klen = len;
	int rc = hm__global_key(out, sizeof out, key, len, global_name);
	if ((rc >= 0) != ok)
		fail("hm__global_key disagrees with the rule for directories", key, len, "", 0);
	if (!ok)
		return;
	memcpy(expect, key, dlen);
	memcpy(expect + dlen, global_name, glen);
	if (hm__key_kind(expect, dlen + glen, global_name) != HM__KEY_GLOBAL)
		fail("a global key that is not a global's key", key, len, "", 0);
	CHECK_BUILD(build_global, expect, dlen + glen);
}

/* A request path: accepted, its key is a module's, and its global's key
 * is a global's: the rule reads the same on every way in. */
static void fuzz_request(const char *p, size_t len)
{
	char key[HM__KEY_MAX + 1], gkey[HM__KEY_MAX + 1];

	if (!request_ok(p, len))
		return;
	int n = hm__path_key(key, sizeof key, p, len);
	if (n != (int)len + 3 || hm__key_kind(key, (size_t)n, global_name) != HM__KEY_MODULE)
		fail("an accepted request path's key is not a module's", p, len, key,
			n > 0 ? (size_t)n : 0);
	g_key = p, g_klen = len;
	CHECK_BUILD(build_path, key, len + 3);
	int g = hm__global_key(gkey, sizeof gkey, key, (size_t)n, global_name);
	if (g < 0 || hm__key_kind(gkey, (size_t)g, global_name) != HM__KEY_GLOBAL)
		fail("an accepted request path's global key is refused", p, len, gkey,
			g > 0 ? (size_t)g : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned op = data[0] % 5;
	size_t nlen = data[1] < size - 2 ? data[1] : size - 2;
	/* Copies: each its own allocation, so that ASan sees reads past them. */
	char *name = malloc(nlen + 1), *rest = malloc(size - 2 - nlen + 1);
	size_t rlen = size - 2 - nlen;

	memcpy(name, data + 2, nlen);
	name[nlen] = '\0';
	memcpy(rest, data + 2 + nlen, rlen);
	rest[rlen] = '\0';
	switch (op) {
	case 0:
		fuzz_subdir(rest, rlen, name, strlen(name));
		break;
	case 1:
		fuzz_file(rest, rlen, name, strlen(name));
		break;
	case 2:
		fuzz_key_kind(rest, rlen);
		break;
	case 3:
		fuzz_global(rest, rlen);
		break;
	default:
		fuzz_request(rest, rlen);
		break;
	}
	free(name);
	free(rest);
	return 0;
}
