/* SPDX-License-Identifier: MIT */
/*
 * check_httpd_app.c - the notes app (sample_handlers/app) served by
 * hotmod-httpd, end to end: posts under load, validation, a new global
 * module under traffic, the global's default handler.  Skipped when the
 * app is not built (configure --without-sqlite).  httpd_harness.h says how
 * the server is run.
 */
#include "config.h" /* _GNU_SOURCE */
#include "httpd_harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GET /app/notes: a JSON array of {"id", "text", "created"}, parsed (to
 * json_decref). */
static json_t *notes_get(void)
{
	struct resp r = get("/app/notes");
	json_error_t err;
	json_t *list, *note;
	size_t i;

	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(r.type);
	ck_assert_str_eq(r.type, "application/json");
	list = json_strict(r.body, r.len, &err);
	ck_assert_msg(list, "notes: %s (byte %d)\n%s", err.text, err.position, r.body);
	ck_assert(json_is_array(list));
	json_array_foreach(list, i, note) {
		ck_assert(jnum(note, "id") >= 1);
		jstr(note, "text");
		ck_assert(jnum(note, "created") > 0);
	}
	resp_free(&r);
	return list;
}

/* How many notes have exactly this text. */
static size_t notes_with(const json_t *list, const char *text)
{
	json_t *note;
	size_t i, n = 0;

	json_array_foreach(list, i, note)
		n += strcmp(jstr(note, "text"), text) == 0;
	return n;
}

struct poster {
	pthread_t thread;
	int id;
	int count;         /* this many, or until stop when 0 */
	atomic_int posted; /* answered 201 */
	atomic_int failed; /* anything else */
	char first_failure[200];
};

static atomic_bool posters_stop;
static atomic_int posted_total;
static pthread_mutex_t posted_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t posted_cv = PTHREAD_COND_INITIALIZER;

static void note_text(char *buf, size_t size, int thread, int i)
{
	snprintf(buf, size, "note %d.%d from check_httpd \xe2\x9c\x93", thread, i);
}

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	char text[64];

	for (int i = 0; p->count ? i < p->count : !atomic_load(&posters_stop); i++) {
		note_text(text, sizeof text, p->id, i);
		struct resp r = http("POST", "/app/notes", text, strlen(text));
		if (r.rc == CURLE_OK && r.status == 201 && strstr(r.body, text)) {
			atomic_fetch_add(&p->posted, 1);
			pthread_mutex_lock(&posted_mu);
			atomic_fetch_add(&posted_total, 1);
			pthread_cond_broadcast(&posted_cv);
			pthread_mutex_unlock(&posted_mu);
		} else if (atomic_fetch_add(&p->failed, 1) == 0) {
			snprintf(p->first_failure, sizeof p->first_failure, "%s: %ld %s",
				curl_easy_strerror(r.rc), r.status, r.body);
		}
		resp_free(&r);
	}
	return NULL;
}

/* Wait until n POSTs in all were answered 201; false after WAIT_S. */
static bool posted_wait(int n)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_S;
	pthread_mutex_lock(&posted_mu);
	while (atomic_load(&posted_total) < n && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&posted_cv, &posted_mu, &deadline);
	pthread_mutex_unlock(&posted_mu);
	return atomic_load(&posted_total) >= n;
}

static void posters_start(struct poster *p, int n, int count)
{
	atomic_store(&posters_stop, false);
	atomic_store(&posted_total, 0);
	for (int i = 0; i < n; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].id = i;
		p[i].count = count;
		ck_assert_int_eq(pthread_create(&p[i].thread, NULL, poster_main, &p[i]), 0);
	}
}

/* Join them; every POST was stored, exactly once, and none failed. */
static void posters_check(struct poster *p, int n)
{
	json_t *list;
	char text[64];
	size_t total = 0;

	atomic_store(&posters_stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(p[i].thread, NULL);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(atomic_load(&p[i].failed) == 0, "poster %d: %d failed, first: %s",
			i, atomic_load(&p[i].failed), p[i].first_failure);
		total += (size_t)atomic_load(&p[i].posted);
	}
	list = notes_get();
	ck_assert_uint_eq(json_array_size(list), total);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < atomic_load(&p[i].posted); j++) {
			note_text(text, sizeof text, i, j);
			ck_assert_msg(notes_with(list, text) == 1, "\"%s\" stored %zu times",
				text, notes_with(list, text));
		}
	}
	json_decref(list);
}

START_TEST(test_concurrent_posts_are_all_stored)
{
	struct poster p[8];

	server_start(NULL);
	posters_start(p, 8, 10);
	posters_check(p, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(atomic_load(&p[i].posted), 10);
}
END_TEST

START_TEST(test_post_failing_validation_answers_400_and_stores_nothing)
{
	char big[600];
	struct resp r, before, after;

	server_start(NULL);
	r = http("POST", "/app/notes", "kept", 4);
	ck_assert_int_eq(r.status, 201);
	resp_free(&r);
	before = get("/app/notes");

	memset(big, 'b', sizeof big);
	memcpy(big, "too long:", 9);
	r = http("POST", "/app/notes", big, sizeof big);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(r.body, "a note is 1 to 500 bytes of UTF-8 text, "
				 "with no control characters but tab\n");
	resp_free(&r);
	/* neither too short, nor a control character, nor bad UTF-8 */
	static const char *const bad[] = {"", "bell\a", "latin-1 caf\xe9", "nul\0inside"};
	static const size_t bad_len[] = {0, 5, 12, 10};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		r = http("POST", "/app/notes", bad[i], bad_len[i]);
		ck_assert_msg(r.status == 400, "note %zu: %ld", i, r.status);
		resp_free(&r);
	}

	after = get("/app/notes");
	ck_assert_str_eq(after.body, before.body); /* the rows went with the rollback */
	ck_assert(!log_has("error: POST /app/notes")); /* a client error, not a failure */
	resp_free(&before);
	resp_free(&after);
	/* and the next one gets the next id: nothing holds the write lock */
	r = http("POST", "/app/notes", "after", 5);
	ck_assert_int_eq(r.status, 201);
	resp_free(&r);
}
END_TEST

START_TEST(test_notes_survive_a_new_global_module_under_post_traffic)
{
	struct poster p[4];
	char *global = rebuilt(APP "/_global.so", "_global-rebuilt.so");
	struct resp r;

	server_start(NULL);
	posters_start(p, 4, 0);
	ck_assert(posted_wait(20));
	install(global, "app/_global.so");
	ck_assert(log_wait("app/_global.so version 2 loaded"));
	ck_assert(log_wait("state handed over")); /* the pool, not a new one */
	ck_assert(log_wait("app/notes.so version 2 loaded")); /* re-bound to it */
	/* and some more on the new pair */
	int now = atomic_load(&posted_total);
	ck_assert(posted_wait(now + 20));
	posters_check(p, 4);
	/* the old version's fini left the adopted pool alone */
	ck_assert(log_wait("app/_global.so version 1 unloaded"));
	r = http("POST", "/app/notes", "after the old global", 20);
	ck_assert_int_eq(r.status, 201);
	resp_free(&r);
	r = get("/app/health");
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "ok: 4 connections"));
	resp_free(&r);
	ck_assert(!log_has("error: POST")); /* no request failed */
	free(global);
}
END_TEST

START_TEST(test_health_answers_from_the_global_modules_default_handler)
{
	struct resp r;
	json_t *st, *m;

	server_start(NULL);
	r = get("/app/health");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok: 4 connections, 3 idle\n0 notes\n");
	resp_free(&r);
	r = http("POST", "/app/notes", "one", 3);
	ck_assert_int_eq(r.status, 201);
	resp_free(&r);
	r = get("/app/health");
	ck_assert_str_eq(r.body, "ok: 4 connections, 3 idle\n1 notes\n");
	resp_free(&r);
	/* health.so has no handler: the global's answered */
	st = status_get();
	ck_assert_ptr_nonnull(m = module_of(st, "app/health.so"));
	ck_assert_int_eq(jnum(m, "current"), 1);
	ck_assert_ptr_nonnull(m = module_of(st, "app/_global.so"));
	ck_assert(json_is_true(json_object_get(m, "global")));
	json_decref(st);
}
END_TEST


static Suite *httpd_app_suite(void)
{
	Suite *s = suite_create("httpd app");

	if (have_app) {
		TCase *app = tcase_create("app");
		tcase_add_checked_fixture(app, httpd_setup, httpd_teardown);
		tcase_add_test(app, test_concurrent_posts_are_all_stored);
		tcase_add_test(app, test_post_failing_validation_answers_400_and_stores_nothing);
		tcase_add_test(app, test_notes_survive_a_new_global_module_under_post_traffic);
		tcase_add_test(app, test_health_answers_from_the_global_modules_default_handler);
		suite_add_tcase(s, app);
	}
	return s;
}

int main(void)
{
	int rc = httpd_main("check_httpd_app", httpd_app_suite);

	return have_app ? rc : 77; /* automake's "skipped" */
}
