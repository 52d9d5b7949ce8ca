/* SPDX-License-Identifier: MIT */
/* status_json.c - the loader's status as JSON, for /_hotmod/status. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* no overlong forms, no surrogates, nothing past U+10FFFF */
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/*
 * A JSON string: quotes, backslashes and control characters escaped, and a
 * byte that is not UTF-8 (file names are bytes) as U+FFFD: the document
 * stays valid JSON whatever the names.
 */
static void put_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	put(b, "\"", 1);
	while (*p) {
		size_t n = utf8_len(p);
		if (*p == '"' || *p == '\\') {
			put(b, "\\", 1);
			put(b, (const char *)p, 1);
		} else if (*p < 0x20) {
			putf(b, "\\u%04x", *p);
		} else if (n == 0) {
			put(b, "\\ufffd", 6);
			n = 1;
		} else {
			put(b, (const char *)p, n);
		}
		p += n ? n : 1;
	}
	put(b, "\"", 1);
}

static void put_module(struct buf *b, const struct hm_module_status *m)
{
	put(b, "{\"path\":", 8);
	put_str(b, m->path);
	putf(b, ",\"global\":%s,\"current\":%llu,\"loads\":%llu,\"failures\":%llu,"
		"\"pinned\":%llu,\"last_error\":",
		m->global ? "true" : "false", (unsigned long long)m->current,
		(unsigned long long)m->loads, (unsigned long long)m->failures,
		(unsigned long long)m->pinned);
	if (m->last_error) {
		put_str(b, hm_err_name(m->last_error));
		put(b, ",\"last_error_msg\":", 18);
		put_str(b, m->last_error_msg);
		putf(b, ",\"last_error_time\":%lld", (long long)m->last_error_time);
	} else {
		put(b, "null", 4);
	}
	if (m->loads)
		putf(b, ",\"last_load_us\":{\"copy\":%llu,\"dlopen\":%llu,\"init\":%llu,"
			"\"total\":%llu}",
			(unsigned long long)m->load_copy_ns / 1000,
			(unsigned long long)m->load_dlopen_ns / 1000,
			(unsigned long long)m->load_init_ns / 1000,
			(unsigned long long)m->load_total_ns / 1000);
	put(b, ",\"versions\":[", 13);
	for (size_t j = 0; j < m->nversions; j++)
		putf(b, "%s{\"version\":%llu,\"refs\":%lu,\"current\":%s}", j ? "," : "",
			(unsigned long long)m->versions[j].version, m->versions[j].refs,
			m->versions[j].current ? "true" : "false");
	put(b, "]}", 2);
}

/* What the master knows of the builds (builds.c): which are quarantined
 * and why, which stands in for them. */
static void put_builds(struct buf *b)
{
	struct srv_build_info *list;
	size_t n = srv_builds_list(&list);
	char hex[2 * HM_DIGEST_SIZE + 1];

	if (!srv_builds_dir())
		return;
	put(b, ",\"builds\":[", 11);
	for (size_t i = 0; i < n; i++) {
		srv_hex(list[i].digest, hex);
		put(b, i ? ",{\"path\":" : "{\"path\":", i ? 9 : 8);
		put_str(b, list[i].path);
		putf(b, ",\"sha256\":\"%s\",\"state\":\"%s\"", hex, list[i].state);
		if (list[i].since)
			putf(b, ",\"since\":%lld", (long long)list[i].since);
		if (list[i].why[0]) {
			put(b, ",\"why\":", 7);
			put_str(b, list[i].why);
		}
		put(b, "}", 1);
	}
	put(b, "]", 1);
	free(list);
}

char *srv_status_json(hm_loader *loader, size_t *len)
{
	struct hm_status *st;
	struct buf b = {0};

	if (hm_status_get(loader, &st) < 0)
		return NULL;
	put(&b, "{\"watch\":", 9);
	put_str(&b, st->watch);
	putf(&b, ",\"versions_alive\":%zu,\"pinned\":%llu,\"rescans\":%llu,\"modules\":[",
		st->versions_alive, (unsigned long long)st->pinned,
		(unsigned long long)st->rescans);
	for (size_t i = 0; i < st->nmodules; i++) {
		if (i)
			put(&b, ",", 1);
		put_module(&b, &st->modules[i]);
	}
	put(&b, "]", 1);
	put_builds(&b);
	put(&b, "}\n", 2);
	hm_status_free(st);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
