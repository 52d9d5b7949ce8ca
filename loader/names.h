/* SPDX-License-Identifier: MIT */
/*
 * names.h - the one rule for the names hotmod serves, and the escaping of
 * untrusted text before it reaches a log or a terminal.  Never installed.
 *
 * Shared by the library (names.c holds the checks and the builders of keys
 * and paths built on these limits), hotmod-httpd and the hotmod tool,
 * which compile loader/escape.c in: the rule and the escaping are written
 * once.  docs/SECURITY.md ("Request paths and names") states the rule.
 */
#ifndef HOTMOD_NAMES_H
#define HOTMOD_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * A request path "a/b" (without ".so"): at most HM__PATH_MAX bytes in
 * HM__SEGMENTS_MAX segments of at most HM__SEGMENT_MAX bytes, so that a
 * module's file name (segment + ".so") fits NAME_MAX.  A directory ("a/b/",
 * "" for the root) is watched and scanned only if a request could name a
 * file in it: at most HM__DIR_MAX bytes, HM__SEGMENTS_MAX - 1 segments.  A
 * key is a file's path under the root: a module's ("a/b.so") or a global
 * module's ("a/b/" + options.global_name, at most HM__NAME_MAX bytes).
 * Every buffer that holds one is sized from these.
 */
#define HM__PATH_MAX 1024
#define HM__SEGMENTS_MAX 16
#define HM__SEGMENT_MAX 250
#define HM__NAME_MAX 255
#define HM__DIR_MAX (HM__PATH_MAX - 1)
#define HM__KEY_MAX (HM__DIR_MAX + HM__NAME_MAX)
/* A directory's global module, unless options.global_name says otherwise
 * (hotmod check uses it too). */
#define HM__GLOBAL_DEFAULT "_global.so"
/* A limit in a message: "at most " HM__NUM(HM__PATH_MAX) " bytes". */
#define HM__NUM_(x) #x
#define HM__NUM(x) HM__NUM_(x)

/* The hooks of a module's descriptor, in its order (hotmod_module.h): the
 * name of hook i < HM__HOOKS, for messages. */
#define HM__HOOKS 7
enum hm__hook {
	HM__HOOK_INIT,
	HM__HOOK_FINI,
	HM__HOOK_PREPARE,
	HM__HOOK_HANDLE,
	HM__HOOK_COMMIT,
	HM__HOOK_ROLLBACK,
	HM__HOOK_RELEASE,
};
static inline const char *hm__hook_name(unsigned i)
{
	static const char *const names[HM__HOOKS] = {
		"init", "fini", "prepare", "handle", "commit", "rollback", "release",
	};
	return i < HM__HOOKS ? names[i] : "?";
}

/* A byte a segment may hold. */
static inline bool hm__name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/*
 * What a name or key is (>= 0), or why the loader does not serve it (< 0,
 * said in words by hm__name_why() for the log).  HM__NAME_NOTMOD: neither
 * a module nor the global (not ".so"): ignored without a word.
 */
#define HM__KEY_MODULE 1
#define HM__KEY_GLOBAL 2
#define HM__NAME_NOTMOD (-1)
#define HM__NAME_BYTE (-2)   /* a byte outside the rule, a '.' first */
#define HM__NAME_LONG (-3)   /* a segment over HM__SEGMENT_MAX */
#define HM__NAME_PATH (-4)   /* a path over HM__PATH_MAX */
#define HM__NAME_DEEP (-5)   /* more than HM__SEGMENTS_MAX segments */
#define HM__NAME_DIR (-6)    /* the directory part breaks the rule */
#define HM__NAME_NOROOM (-7) /* the caller's buffer is too small */

/*
 * Why s[0..n) is not a name of the rule of at most max bytes: 1 to max
 * bytes of [A-Za-z0-9._-], not starting with '.' (no ".", "..", no hidden
 * name).  HM__NAME_BYTE (a byte outside it, empty, a '.' first; said first,
 * as the log's reason), HM__NAME_LONG, or 0.
 */
static inline int hm__name_why_n(const char *s, size_t n, size_t max)
{
	for (size_t i = 0; i < n; i++)
		if (!hm__name_char((unsigned char)s[i]))
			return HM__NAME_BYTE;
	if (n == 0 || s[0] == '.')
		return HM__NAME_BYTE;
	return n > max ? HM__NAME_LONG : 0;
}
/* Why segment s[0..n) breaks the rule, or 0; and whether it keeps it. */
static inline int hm__segment_why(const char *s, size_t n)
{
	return hm__name_why_n(s, n, HM__SEGMENT_MAX);
}
static inline bool hm__segment_okn(const char *s, size_t n)
{
	return hm__segment_why(s, n) == 0;
}

/*
 * What name[0..n), a file's name in a served directory, is: the global
 * module (HM__KEY_GLOBAL: exactly global_name), a module a request could
 * name (HM__KEY_MODULE: a segment + ".so", the directory's depth and length
 * allowing: names.c checks those), or why not.  The library's scan, its
 * watcher and the hotmod tool all ask this.
 */
static inline int hm__file_name_kind(const char *name, size_t n, const char *global_name)
{
	int why;

	if (n == strlen(global_name) && memcmp(name, global_name, n) == 0)
		return HM__KEY_GLOBAL;
	if (n <= 3 || memcmp(name + n - 3, ".so", 3) != 0)
		return HM__NAME_NOTMOD;
	if ((why = hm__segment_why(name, n - 3)) < 0)
		return why;
	return HM__KEY_MODULE;
}

/*
 * Copy src[0..len) into dst (size bytes, NUL-terminated) with every byte
 * that is not printable ASCII or valid UTF-8 of a printable character
 * escaped: \n, \r, \t, \xHH for the other C0 bytes, DEL, NUL and every byte
 * of invalid UTF-8 (overlong forms, surrogates, stray or cut sequences),
 * and \uHHHH for C1 controls (U+0080..U+009F), the line and paragraph
 * separators and the bidirectional controls.  A backslash is not escaped,
 * so escaped text passes unchanged (escaping twice does no harm).  What
 * does not fit is cut off, never in the middle of an escape or of a
 * character.  Returns the length written.
 */
size_t hm__escape(char *dst, size_t size, const char *src, size_t len)
	__attribute__((visibility("hidden")));

#ifndef HM__HIDDEN
#define HM__HIDDEN __attribute__((visibility("hidden")))
#endif

/* ---- the checks and the builders (names.c; the library only) ---------------- */

/*
 * Check that p[0..len) is a plain module path: segments of [A-Za-z0-9._-]
 * not starting with '.', separated by single '/', no leading or trailing
 * '/', within the limits of names.h, and that its file is not the
 * directory's global module.
 */
HM__HIDDEN int hm__path_check(const char *p, size_t len, const char *global_name);
/* One segment a request could name, checked silently (no message). */
HM__HIDDEN bool hm__segment_ok(const char *name);
/* options.global_name: 1 to HM__NAME_MAX bytes of [A-Za-z0-9._-], no '.' first. */
HM__HIDDEN bool hm__global_name_ok(const char *name);
/* A request kind, kind[0..n) (hotmod.h): 1 to HM_REQUEST_KIND_MAX bytes of
 * visible ASCII, 0x21 to 0x7e. */
HM__HIDDEN bool hm__request_kind_okn(const char *kind, size_t n);
/* dir[0..len) is "" or "a/b/": a directory a request could name a file in. */
HM__HIDDEN bool hm__dir_ok(const char *dir, size_t len);

HM__HIDDEN const char *hm__name_why(int why);
/* The kind of key[0..len) ("a/b.so", "a/_global.so"). */
HM__HIDDEN int hm__key_kind(const char *key, size_t len, const char *global_name);

/*
 * The builders of keys and paths.  Each checks what it is given against the
 * rule, writes a NUL-terminated result of at most size - 1 bytes into out
 * and returns its length, or returns a reason (< 0) and writes nothing.
 * The directory given (dir[0..dir_len), "" or "a/b/") must pass hm__dir_ok.
 */
/* "a/b/" + name + "/": a subdirectory to watch and scan. */
HM__HIDDEN int hm__subdir_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name);
/* "a/b/" + name: a module's or the global's key (*kind), else a reason. */
HM__HIDDEN int hm__file_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name, const char *global_name, int *kind);
/* The key of the global module of key[0..len)'s directory. */
HM__HIDDEN int hm__global_key(char *out, size_t size, const char *key, size_t len,
	const char *global_name);
/* A request path's key: path[0..len) + ".so" (path checked already). */
HM__HIDDEN int hm__path_key(char *out, size_t size, const char *path, size_t len);

#endif /* HOTMOD_NAMES_H */
