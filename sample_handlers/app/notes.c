/* SPDX-License-Identifier: MIT */
/*
 * notes: a list of notes in SQLite, served as JSON.
 *
 *	GET  /app/notes   [{"id":1,"text":"buy milk","created":1700000000}, ...]
 *	POST /app/notes   the body, plain text, is a new note: 201 and the note
 *
 * The module opens no database: the directory's global module (_global.c)
 * has already checked out a connection and begun a transaction, and
 * app_db(ctx) returns it.  The handler only runs SQL, always with bound
 * parameters.  If it fails, the global module rolls the transaction back;
 * if it succeeds, it commits.
 *
 * POST shows what that buys: it INSERTs first and validates afterwards.
 * A note that fails validation gets a 400 and leaves no row, because the
 * handler then returns negative and the chain rolls back.  (A real app would
 * validate first; the same holds for any failure found after writing.)
 */
#include "app.h"

#include <hotmod_http.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NOTE_MAX 500 /* bytes */

static int db_fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "app/notes.so: %s: %s\n", what, sqlite3_errmsg(db));
	return -1;
}

/* ---- JSON out ---------------------------------------------------------------- */

/* s[0..len) as a JSON string; notes hold valid UTF-8 (see note_ok). */
static int put_json_string(hm_http *r, const char *s, size_t len)
{
	size_t done = 0;
	char esc[8];

	if (hm_http_puts(r, "\"") < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof esc, "\\%c", c);
		else
			snprintf(esc, sizeof esc, "\\u%04x", c);
		if (hm_http_write(r, s + done, i - done) < 0 || hm_http_puts(r, esc) < 0)
			return -1;
		done = i + 1;
	}
	return hm_http_write(r, s + done, len - done) < 0 || hm_http_puts(r, "\"") < 0 ? -1 : 0;
}

static int put_note(hm_http *r, sqlite3_int64 id, const char *text, size_t len,
	sqlite3_int64 created)
{
	if (hm_http_printf(r, "{\"id\":%lld,\"text\":", (long long)id) < 0 ||
	    put_json_string(r, text, len) < 0)
		return -1;
	return hm_http_printf(r, ",\"created\":%lld}", (long long)created);
}

/* ---- GET ---------------------------------------------------------------------- */

static int put_row(hm_http *r, sqlite3_stmt *st)
{
	const char *text = (const char *)sqlite3_column_text(st, 1);

	if (!text) /* NOT NULL column: out of memory */
		return -1;
	return put_note(r, sqlite3_column_int64(st, 0), text,
		(size_t)sqlite3_column_bytes(st, 1), sqlite3_column_int64(st, 2));
}

static int list(hm_http *r, sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	if (sqlite3_prepare_v2(db, "SELECT id, text, created FROM notes ORDER BY id", -1, &st,
		    NULL) != SQLITE_OK)
		return db_fail(db, "listing notes");
	if (hm_http_set_header(r, "Content-Type", "application/json") < 0 ||
	    hm_http_puts(r, "[") < 0) {
		sqlite3_finalize(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((n++ && hm_http_puts(r, ",") < 0) || put_row(r, st) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	if (rc != SQLITE_DONE)
		db_fail(db, "listing notes");
	sqlite3_finalize(st);
	return rc != SQLITE_DONE ? -1 : hm_http_puts(r, "]\n");
}

/* ---- POST --------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s with its code point, or 0 if invalid. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3
		 : s[0] < 0xf5 ? 4 : 0;
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};

	if (n == 0 || n > len)
		return 0;
	*cp = n == 1 ? s[0] : s[0] & (0x3fu >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3fu);
	}
	/* No overlong forms, surrogates or code points past Unicode. */
	if (*cp < min[n] || (*cp >= 0xd800 && *cp < 0xe000) || *cp > 0x10ffff)
		return 0;
	return n;
}

/* 1 to NOTE_MAX bytes of UTF-8 without control characters but tab. */
static int note_ok(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	uint32_t cp;

	if (len < 1 || len > NOTE_MAX)
		return 0;
	for (size_t i = 0, n; i < len; i += n) {
		if (!(n = utf8_next(s + i, len - i, &cp)))
			return 0;
		if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp < 0xa0))
			return 0;
	}
	return 1;
}

static int insert(sqlite3 *db, const char *text, size_t len, sqlite3_int64 created,
	sqlite3_int64 *id)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT INTO notes(text, created) VALUES (?1, ?2)", -1,
		&st, NULL);

	/* SQLITE_STATIC: the body outlives the statement, finalised below. */
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text64(st, 1, text, len, SQLITE_STATIC, SQLITE_UTF8);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, created);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_DONE)
		rc = SQLITE_OK;
	if (rc == SQLITE_OK)
		*id = sqlite3_last_insert_rowid(db);
	else
		db_fail(db, "adding a note");
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

static int add(hm_http *r, sqlite3 *db)
{
	size_t len;
	const char *text = hm_http_body(r, &len);
	sqlite3_int64 created = (sqlite3_int64)time(NULL), id;

	if (insert(db, text, len, created, &id) < 0)
		return -1; /* a 500: the server logs why */
	if (!note_ok(text, len)) {
		/* 4xx, then fail: the client gets this answer, the row goes. */
		hm_http_set_status(r, 400);
		hm_http_puts(r, "a note is 1 to 500 bytes of UTF-8 text, "
				"with no control characters but tab\n");
		return -1;
	}
	if (hm_http_set_status(r, 201) < 0 ||
	    hm_http_set_header(r, "Content-Type", "application/json") < 0 ||
	    put_note(r, id, text, len, created) < 0)
		return -1;
	return hm_http_puts(r, "\n");
}

/* ---- the module ----------------------------------------------------------------- */

/* Refuse to run against a global module built from another app.h. */
static int init(hm_ctx *ctx)
{
	if (app_tag_ok(hm_ctx_global_state(ctx)))
		return 0;
	fprintf(stderr, "%s: needs app/_global.so of layout %u\n", hm_ctx_path(ctx), APP_LAYOUT);
	return -1;
}

static int handle(hm_ctx *ctx)
{
	hm_http *r = hm_ctx_request(ctx);
	const char *m = hm_http_method(r);

	if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
		return list(r, app_db(ctx));
	if (!strcmp(m, "POST"))
		return add(r, app_db(ctx));
	if (hm_http_set_status(r, 405) < 0 || hm_http_set_header(r, "Allow", "GET, HEAD, POST") < 0)
		return -1;
	return hm_http_puts(r, "GET or POST\n");
}

HM_MODULE(.init = init, .handle = handle, .request_kind = HM_HTTP_KIND);
