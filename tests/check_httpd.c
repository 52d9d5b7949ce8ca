/* SPDX-License-Identifier: MIT */
/*
 * check_httpd.c - hotmod-httpd end to end: the samples, reloads, errors,
 * shutdown and the command line, over HTTP on a free loopback port
 * (httpd_harness.h says how; the notes app: check_httpd_app.c).
 *
 * Tests that once caught a bug say which in a comment.
 */
#include "config.h" /* _GNU_SOURCE, PACKAGE_VERSION */
#include "httpd_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the samples ----------------------------------------------------------------- */

START_TEST(test_hello_answers_with_its_greeting)
{
	struct resp r;

	server_start(NULL);
	r = get("/hello");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "Hello from hotmod!\n");
	ck_assert_ptr_nonnull(r.type);
	ck_assert_str_eq(r.type, "text/plain; charset=utf-8"); /* the server's default */
	resp_free(&r);
	/* the access log: client, request, status, bytes sent */
	ck_assert(log_wait("access: 127.0.0.1 \"GET /hello\" 200 19 "));
}
END_TEST

START_TEST(test_counter_counts_up_one_request_at_a_time)
{
	server_start(NULL);
	expect("/counter", 200, "counter version 1: request 1\n");
	expect("/counter", 200, "counter version 1: request 2\n");
	expect("/counter", 200, "counter version 1: request 3\n");
}
END_TEST

START_TEST(test_slow_answers_after_the_delay_it_was_asked_for)
{
	server_start(NULL);
	expect("/slow?ms=20", 200, "slow version 1: slept 20 ms\n");
	expect("/slow?ms=0", 200, "slow version 1: slept 0 ms\n");
	/* its own client error, answered without failing */
	expect("/slow?ms=-1", 400, "ms: 0 to 60000\n");
	expect("/slow?ms=60001", 400, "ms: 0 to 60000\n");
}
END_TEST

START_TEST(test_redirect_answers_with_greet_and_says_where_it_came_from)
{
	server_start(NULL);
	expect("/redirect?name=Ada", 200, "Hello, Ada! (redirected from /redirect)\n");
	expect("/redirect", 200, "Hello, redirected visitor! (redirected from /redirect)\n");
	/* the data it attached lived on the request, and died with it */
	expect("/greet", 200, "Hello, world!\n");
}
END_TEST

START_TEST(test_greet_says_hello_to_the_name_or_to_the_world)
{
	server_start(NULL);
	expect("/greet?name=Bob", 200, "Hello, Bob!\n");
	expect("/greet?name=J%C3%BCrgen%20M", 200, "Hello, J\xc3\xbcrgen M!\n");
	expect("/greet", 200, "Hello, world!\n");
}
END_TEST

START_TEST(test_url_path_names_a_file_under_the_root)
{
	install(SAMPLES "/hello.so", "index.so");
	install(SAMPLES "/greet.so", "a/b/c.so");
	server_start(NULL);
	expect("/", 200, "Hello from hotmod!\n");          /* index.so */
	expect("/a/b/c?name=C", 200, "Hello, C!\n");       /* a/b/c.so */
	expect("/hello?x=1&y=2", 200, "Hello from hotmod!\n"); /* the query is no part of it */
	expect("/%68ello", 200, "Hello from hotmod!\n");   /* decoded first */
	expect("/hello.so", 404, "Not Found\n");            /* that would be hello.so.so */
	expect("/hello/", 404, "Not Found\n");
	expect("/a/b", 404, "Not Found\n");                 /* a directory */
	expect("/nothing", 404, "Not Found\n");
	expect("/HELLO", 404, "Not Found\n");
}
END_TEST

/* ---- reload --------------------------------------------------------------------- */

START_TEST(test_request_in_flight_finishes_on_v1_while_v2_answers_new_ones)
{
	struct bg slow;
	struct resp r;
	json_t *st, *m, *v;
	char *path = gated("/probe");

	server_start(NULL);
	expect("/probe", 200, "v1\n");
	bg_start(&slow, path);
	ck_assert(log_wait("http_probe v1: parked"));
	/* the server agrees: version 1 is held by a request */
	st = status_get();
	ck_assert_ptr_nonnull(m = module_of(st, "probe.so"));
	ck_assert_ptr_nonnull(v = version_of(m, 1));
	ck_assert_int_eq(jnum(v, "refs"), 1);
	json_decref(st);

	install(fixture("http_v2"), "probe.so");
	ck_assert(log_wait("probe.so version 2 loaded"));
	r = get("/probe");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "v2\n");
	ck_assert_int_ge(r.version, 2); /* 3 if a look caught the file mid-write */
	resp_free(&r);
	expect("/probe?ms=1", 200, "v2\n");
	/* both alive: the new one serves, 1 still runs the parked request */
	st = status_get();
	m = module_of(st, "probe.so");
	ck_assert_int_ge(jnum(m, "current"), 2);
	ck_assert_ptr_nonnull(v = version_of(m, 1));
	ck_assert_int_eq(jnum(v, "refs"), 1);
	ck_assert(json_is_false(json_object_get(v, "current")));
	json_decref(st);
	ck_assert(!atomic_load(&slow.done));

	ck_assert(gate_release());
	r = bg_join(&slow);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "v1\n");
	ck_assert_int_eq(r.version, 1);
	resp_free(&r);
	/* and then version 1 goes */
	ck_assert(log_wait("probe.so version 1 unloaded"));
	expect("/probe", 200, "v2\n");
	free(path);
}
END_TEST

START_TEST(test_status_is_strict_json_and_shows_the_reload)
{
	json_t *st, *m, *v;

	server_start(NULL);
	st = status_get();
	ck_assert_str_eq(jstr(st, "watch"), "inotify");
	ck_assert_ptr_nonnull(m = module_of(st, "hello.so")); /* preloaded */
	ck_assert_int_eq(jnum(m, "current"), 1);
	ck_assert(json_is_false(json_object_get(m, "global")));
	ck_assert(json_is_null(json_object_get(m, "last_error")));
	if (have_app) {
		ck_assert_ptr_nonnull(m = module_of(st, "app/_global.so"));
		ck_assert(json_is_true(json_object_get(m, "global")));
	}
	json_decref(st);

	/* A rename: the file is complete when the watcher sees it, so the
	 * counts are exact.  (install(1) may be looked at mid-write.) */
	deploy_mv("http_v2", www, "probe.so");
	ck_assert(log_wait("probe.so version 2 loaded"));
	expect("/probe", 200, "v2\n");
	st = status_get();
	ck_assert_ptr_nonnull(m = module_of(st, "probe.so"));
	ck_assert_int_eq(jnum(m, "current"), 2);
	ck_assert_int_eq(jnum(m, "loads"), 2);
	ck_assert_ptr_nonnull(v = version_of(m, 2));
	ck_assert(json_is_true(json_object_get(v, "current")));
	json_decref(st);

	/* a broken file: logged, counted, and version 2 keeps serving */
	char *junk = at(base, "junk.so");
	FILE *f = fopen(junk, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not an ELF file\n\"quoted\" \\ and a tab\t\n", f);
	ck_assert_int_eq(fclose(f), 0);
	char *probe = at(www, "probe.so");
	ck_assert_int_eq(chmod(junk, 0644), 0);
	ck_assert_int_eq(rename(junk, probe), 0); /* the same file system */
	ck_assert(log_wait("version 2 keeps serving"));
	expect("/probe", 200, "v2\n");
	st = status_get();
	m = module_of(st, "probe.so");
	ck_assert_int_eq(jnum(m, "current"), 2);
	ck_assert_int_eq(jnum(m, "loads"), 2);
	ck_assert_int_eq(jnum(m, "failures"), 1);
	ck_assert_str_eq(jstr(m, "last_error"), "ENOTELF");
	ck_assert_ptr_nonnull(strstr(jstr(m, "last_error_msg"), "probe.so"));
	json_decref(st);
	free(junk);
	free(probe);
}
END_TEST

/*
 * hotmod_module(3)'s first example, built for a FILE * embedder
 * (tests/fixtures/kind.c): served an hm_http it would crash the server.
 * It is refused at load for its kind: its path answers 500, every other
 * path answers on, and in place of a working module it leaves that one
 * serving.
 */
START_TEST(test_a_module_built_for_another_request_kind_answers_500_and_the_server_stays_up)
{
	json_t *st, *m;

	install(fixture("kind_stdio"), "stdio.so");
	server_start(NULL);
	ck_assert(log_wait("stdio.so: built for request kind 'example-stdio/1', this loader "
			   "serves 'hotmod-http/1'"));
	expect("/stdio", 500, "Internal Server Error\n");
	expect("/stdio", 500, "Internal Server Error\n");
	expect("/probe", 200, "v1\n"); /* http_v1 declares no kind: served */
	expect("/hello", 200, "Hello from hotmod!\n");
	st = status_get();
	ck_assert_ptr_nonnull(m = module_of(st, "stdio.so"));
	ck_assert_str_eq(jstr(m, "last_error"), "EKIND");
	ck_assert_int_eq(jnum(m, "current"), 0);
	json_decref(st);

	install(fixture("kind_stdio"), "probe.so");
	ck_assert(log_wait("version 1 keeps serving"));
	expect("/probe", 200, "v1\n");
	install(fixture("http_v2"), "probe.so"); /* declares hotmod-http/1 */
	ck_assert(log_wait("probe.so version 2 loaded"));
	expect("/probe", 200, "v2\n");
	ck_assert_int_eq(server_stop(), 0); /* up all along, and exits cleanly */
}
END_TEST

/* --require-kind: modules that declare no kind are refused too. */
START_TEST(test_require_kind_refuses_a_module_that_declares_none)
{
	static const char *const opts[] = {"--require-kind", NULL};

	server_start(opts);
	ck_assert(log_wait("probe.so: declares no request kind, and this loader serves only "
			   "modules built for 'hotmod-http/1'"));
	expect("/probe", 500, "Internal Server Error\n");
	expect("/hello", 200, "Hello from hotmod!\n"); /* the samples declare it */
	install(fixture("http_v2"), "probe.so");
	ck_assert(log_wait("probe.so version 1 loaded"));
	expect("/probe", 200, "v2\n");
}
END_TEST

START_TEST(test_sighup_rescans_the_root)
{
	/* stat checks at most once an hour: only the rescan can see a change */
	static const char *const opts[] = {"--watch", "stat", "--check-interval", "3600000", NULL};
	json_t *st;

	server_start(opts);
	expect("/probe", 200, "v1\n");
	install(fixture("http_v2"), "probe.so");
	expect("/probe", 200, "v1\n");
	ck_assert_int_eq(server_kill(SIGHUP), 0);
	ck_assert(log_wait("SIGHUP: rescanning"));
	ck_assert(log_wait("probe.so version 2 loaded"));
	expect("/probe", 200, "v2\n");
	st = status_get();
	ck_assert_str_eq(jstr(st, "watch"), "stat");
	json_decref(st);
}
END_TEST

/*
 * Regression (fixed): install(1) unlinks the file, creates it empty (0600),
 * copies into it, closes it and chmods it.  Now and then the watcher still
 * looks at the new file before it is written, and logs
 *	error: probe.so: 0 bytes is too short for an ELF header (version N keeps serving)
 * with a failure counted in the status, for a deploy that is fine a moment
 * later (the close brings the file again).  Likely: a batch of events
 * that ends with the old file's DELETE ends its "being written" state and
 * is looked at at once, and by then install(1) has created the new, empty
 * file, whose CREATE is only in the next batch.  A race: seen in most
 * runs of this test on a busy machine (another build running), in few on
 * an idle one; it makes three hundred deploys, each waited for by its
 * answer, to give it a chance.
 */
START_TEST(test_install_deploys_log_no_error)
{
	static const char *const opts[] = {"--verbose", NULL}; /* the log says why */

	server_start(opts);
	for (int i = 0; i < 300; i++) {
		install(fixture(i % 2 ? "http_v1" : "http_v2"), "probe.so");
		ck_assert_msg(answers("/probe", i % 2 ? "v1\n" : "v2\n"), "deploy %d not served", i);
	}
	ck_assert(!log_has("error: probe.so")); /* fails now and then: see above */
}
END_TEST

/*
 * Directories no URL can name ("caf\xe9" is not UTF-8; '"' and '\\' are no
 * path bytes) are not loaded at all, and the status stays valid JSON (its
 * strings escape quotes and write bytes that are not UTF-8 as U+FFFD).
 */
START_TEST(test_status_stays_json_with_a_directory_name_that_is_not_utf8)
{
	char *dir = at(www, "caf\xe9"), *quoted = at(www, "a\"b\\c");
	json_t *st;

	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(mkdir(quoted, 0755), 0);
	install(fixture("http_v1"), "caf\xe9/_global.so");
	install(fixture("http_v1"), "a\"b\\c/_global.so");
	server_start(NULL);
	expect("/probe", 200, "v1\n");
	st = status_get(); /* the strict reader accepts it */
	ck_assert_ptr_null(module_of(st, "a\"b\\c/_global.so"));
	ck_assert(!log_has("a\"b\\c/_global.so"));
	ck_assert(!log_has("caf\xe9/_global.so"));
	json_decref(st);
	free(dir);
	free(quoted);
}
END_TEST

/* ---- errors ----------------------------------------------------------------------- */

START_TEST(test_handler_failure_answers_a_bare_500_and_logs_why)
{
	char *greet = at(www, "greet.so");

	server_start(NULL);
	expect("/redirect?name=Ada", 200, "Hello, Ada! (redirected from /redirect)\n");
	/* redirect's nested dispatch to greet now fails, so redirect fails */
	ck_assert_int_eq(unlink(greet), 0);
	ck_assert(log_wait("greet.so removed"));
	expect("/redirect?name=Ada", 500, "Internal Server Error\n");
	ck_assert(log_wait("error: GET /redirect: redirect.so version 1: module handle "
			   "returned"));
	ck_assert(log_wait("\"GET /redirect\" 500 22 "));
	/* the same for a handler that wrote its internals before failing */
	expect("/probe?fail=0", 500, "Internal Server Error\n");
	ck_assert(log_wait("error: GET /probe: probe.so version 1: module handle returned -1"));
	/* a 5xx of its own does not stand either */
	expect("/probe?fail=503", 500, "Internal Server Error\n");
	free(greet);
}
END_TEST

START_TEST(test_handler_4xx_before_failing_stands)
{
	server_start(NULL);
	expect("/probe?fail=409", 409, "probe internals: v1 failed on purpose\n");
	expect("/probe?fail=400", 400, "probe internals: v1 failed on purpose\n");
	expect("/probe", 200, "v1\n");
	/* a client error is the client's: the server logs no error for it */
	ck_assert(log_wait("\"GET /probe\" 409 "));
	ck_assert(!log_has("error: GET /probe"));
}
END_TEST

START_TEST(test_body_over_1_mib_gets_413_and_never_reaches_the_handler)
{
	size_t max = 1u << 20;
	char *body = malloc(max + 1);
	struct resp r;

	ck_assert_ptr_nonnull(body);
	memset(body, 'x', max + 1);
	server_start(NULL);
	r = http("POST", "/counter", body, max + 1);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 413);
	ck_assert_str_eq(r.body, "Payload Too Large\n");
	resp_free(&r);
	/* the counter did not count it */
	expect("/counter", 200, "counter version 1: request 1\n");
	/* 1 MiB exactly is allowed */
	r = http("POST", "/counter", body, max);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "counter version 1: request 2\n");
	resp_free(&r);
	free(body);
}
END_TEST

/* Module paths in the status, one per line, to compare two snapshots. */
static char *module_list(void)
{
	json_t *st, *m;
	char *list = NULL;
	size_t size = 0, i;
	FILE *f = open_memstream(&list, &size);

	ck_assert_ptr_nonnull(f);
	st = status_get();
	json_array_foreach(json_object_get(st, "modules"), i, m)
		fprintf(f, "%s loads %.0f\n", jstr(m, "path"), jnum(m, "loads"));
	json_decref(st);
	fclose(f);
	return list;
}

START_TEST(test_hostile_paths_answer_404_and_load_nothing)
{
	static const char *const paths[] = {
		"/../outside", "/%2e%2e/outside", "/%2e%2e%2foutside", "/app/../hello",
		"/a//b", "//etc/passwd", "/%2fetc%2fpasswd", "/hello%00.txt", "/%00",
		"/hello%00", "/.hidden", "/%2ehidden", "/_global", "/app/_global",
		"/link", "/hello%20", "/hello\\", "/./hello",
	};
	char *outside = at(base, "outside.so"), *link = at(www, "link.so"), *up = at(www, "up");
	char *before, *after, *longpath, *deep;
	const char *cp[] = {"install", "-m", "644", SAMPLES "/hello.so", outside, NULL};
	json_t *st, *m;

	/* a real module next to the root, and ways that would lead to it */
	ck_assert_int_eq(run(cp), 0);
	ck_assert_int_eq(symlink("../outside.so", link), 0);
	ck_assert_int_eq(symlink("..", up), 0);
	/* real modules no URL may name: a hidden one and a global one */
	install(SAMPLES "/hello.so", ".hidden.so");
	install(SAMPLES "/hello.so", "_global.so");
	server_start(NULL);
	expect("/hello", 200, "Hello from hotmod!\n");
	before = module_list();
	size_t loaded = log_count(" loaded in ");

	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		expect(paths[i], 404, "Not Found\n");
	/* 2000 bytes in one segment, and in 1000 segments */
	longpath = malloc(2002);
	deep = malloc(2002);
	ck_assert(longpath && deep);
	longpath[0] = '/';
	memset(longpath + 1, 'a', 2000);
	longpath[2001] = '\0';
	for (int i = 0; i < 1000; i++)
		memcpy(deep + 2 * i, "/a", 2);
	deep[2000] = '\0';
	expect(longpath, 404, "Not Found\n");
	expect(deep, 404, "Not Found\n");

	after = module_list();
	ck_assert_str_eq(after, before); /* nothing new, nothing reloaded */
	ck_assert_ptr_null(strstr(after, "outside"));
	/* the link is a file of the root: known, refused, never loaded */
	st = status_get();
	ck_assert_ptr_nonnull(m = module_of(st, "link.so"));
	ck_assert_int_eq(jnum(m, "loads"), 0);
	ck_assert_str_eq(jstr(m, "last_error"), "EESCAPE");
	json_decref(st);
	ck_assert_ptr_null(strstr(after, ".hidden"));
	ck_assert_int_eq(log_count(" loaded in "), loaded);
	ck_assert(!log_has("outside.so version"));
	ck_assert(!log_has("link.so version"));
	ck_assert(!log_has(".hidden.so version"));
	expect("/hello", 200, "Hello from hotmod!\n"); /* and the server is fine */
	free(before);
	free(after);
	free(longpath);
	free(deep);
	free(outside);
	free(link);
	free(up);
}
END_TEST

START_TEST(test_a_url_cannot_forge_a_log_line)
{
	server_start(NULL);
	expect("/x%0a2026-01-01T00:00:00Z%20info:%20forged", 404, "Not Found\n");
	ck_assert(log_wait("/x\\x0a2026-01-01T00:00:00Z info: forged"));
	ck_assert(!log_has("\n2026-01-01T00:00:00Z info: forged"));
}
END_TEST

/*
 * Regression (fixed): the loader's existence check (fstatat then) followed
 * symbolic links out of the root, although the load itself (openat2 with
 * RESOLVE_BENEATH) refuses them.  With a link to a directory outside, a
 * request for an existing file out there gets a module entry: kept until
 * hm_close, shown to every client by /_hotmod/status (which tells files
 * that exist outside the root from files that do not), and an error line
 * for each new name.  Nothing is loaded; the client gets 404 either way.
 */
START_TEST(test_a_symlink_out_of_the_root_records_nothing_for_a_request)
{
	char *outside = at(base, "outside.so"), *up = at(www, "up");
	const char *cp[] = {"install", "-m", "644", SAMPLES "/hello.so", outside, NULL};
	char *before, *after;

	ck_assert_int_eq(run(cp), 0);
	ck_assert_int_eq(symlink("..", up), 0);
	server_start(NULL);
	before = module_list();
	expect("/up/outside", 404, "Not Found\n");
	expect("/up/www/up/outside", 404, "Not Found\n");
	expect("/up/www/hello", 404, "Not Found\n");
	expect("/up/nothing", 404, "Not Found\n");
	after = module_list();
	ck_assert(!log_has("outside.so version"));
	ck_assert_str_eq(after, before); /* fails: up/outside.so etc. are listed */
	free(before);
	free(after);
	free(outside);
	free(up);
}
END_TEST

/*
 * Regression (fixed): the method went into the access log (and the error line
 * of a 500) as the client sent it.  The URL is escaped (the test above),
 * but libmicrohttpd accepts control characters in a method, ESC and even a
 * lone CR, so "G\x1b[2JT" puts a terminal escape into the log.  (Such a
 * method also reaches the handlers.)
 */
START_TEST(test_a_method_cannot_put_control_characters_into_the_log)
{
	struct resp r;

	server_start(NULL);
	r = http("G\x1b[2JT", "/probe", NULL, 0);
	ck_assert_int_eq(r.rc, CURLE_OK);
	resp_free(&r);
	ck_assert(log_wait(" /probe\" "));
	ck_assert(!log_has("\x1b")); /* fails: "G\x1b[2JT /probe" is in the log */
}
END_TEST

/* ---- shutdown -------------------------------------------------------------------- */


START_TEST(test_sigterm_finishes_the_request_in_flight_and_refuses_new_connections)
{
	static const char *const opts[] = {"--grace", "60000", NULL};
	struct bg slow;
	struct resp r;
	char *path = gated("/probe");
	bool no = false;

	server_start(opts);
	bg_start(&slow, path);
	ck_assert(log_wait("http_probe v1: parked"));
	ck_assert_int_eq(server_kill(SIGTERM), 0);
	ck_assert(log_wait("stopping: no new connections"));
	/* The listening socket closes just after that line: a bounded wait
	 * for it, while the request is held, so refusal can only be its doing. */
	for (int i = 0; i < WAIT_S * 100 && !(no = server_refuses_connections()); i++)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	ck_assert_msg(no, "connections still accepted after SIGTERM");
	ck_assert(!atomic_load(&slow.done));
	ck_assert(!log_has("info: stopped"));

	ck_assert(gate_release());
	r = bg_join(&slow);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "v1\n");
	resp_free(&r);
	ck_assert_int_eq(server_reap(), 0);
	ck_assert(log_has("\"GET /probe\" 200 3 "));
	ck_assert(log_has("probe.so version 1 unloaded"));
	ck_assert(log_has("info: stopped"));
	free(path);
}
END_TEST

/* ---- the command line ---------------------------------------------------------- */

START_TEST(test_every_option_of_the_usage_is_in_the_manual)
{
	static const char *const help[] = {"--help", NULL}, *const version[] = {"-V", NULL};
	char *usage, *vers, *man = NULL, want[64];
	size_t size = 0, options = 0;
	FILE *f = fopen(TOP_SRCDIR "/man/hotmod-httpd.8", "r");

	ck_assert_int_eq(capture(help, &usage), 0);
	ck_assert_ptr_nonnull(strstr(usage, "usage: hotmod-httpd --root DIR"));
	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(getdelim(&man, &size, '\0', f), 0);
	fclose(f);
	/* "  -r, --root DIR" and "      --lazy": each as ".It Fl r ..., Fl \-root" */
	for (char *line = usage; (line = strstr(line, "\n  ")); line++) {
		char s = 0, l[32];
		if (sscanf(line, "\n  -%c, --%31[a-z-]", &s, l) == 2) {
			snprintf(want, sizeof want, ".It Fl %c ", s);
			ck_assert_msg(strstr(man, want), "-%c is not in hotmod-httpd.8", s);
		} else if (sscanf(line, "\n      --%31[a-z-]", l) != 1) {
			continue;
		}
		/* ".Fl \-check\-interval": every hyphen escaped */
		size_t n = (size_t)snprintf(want, sizeof want, "Fl \\-");
		for (const char *p = l; *p && n + 3 < sizeof want; p++)
			n += (size_t)snprintf(want + n, sizeof want - n, *p == '-' ? "\\-" : "%c", *p);
		bool found = false; /* in the list of options: on an ".It" line */
		for (const char *p = man; !found && (p = strstr(p, want)); p += n) {
			const char *bol = p;
			while (bol > man && bol[-1] != '\n')
				bol--;
			found = (p[n] == ' ' || p[n] == '\n') && strncmp(bol, ".It ", 4) == 0;
		}
		ck_assert_msg(found, "--%s is not in hotmod-httpd.8 as \"%s\"", l, want);
		options++;
	}
	ck_assert_uint_eq(options, 30);
	ck_assert_int_eq(capture(version, &vers), 0);
	ck_assert_ptr_nonnull(strstr(vers, "hotmod-httpd " PACKAGE_VERSION " (libhotmod "));
	free(usage);
	free(vers);
	free(man);
}
END_TEST

START_TEST(test_a_wrong_command_line_exits_2_and_a_bad_root_or_address_1)
{
	static const char *const bad[][5] = {
		{NULL},
		{"--root", NULL},
		{"--root", "/x", "extra", NULL},
		{"--root", "/x", "--bogus", NULL},
		{"--root", "/x", "--threads", "0", NULL},
		{"--root", "/x", "--threads", "many", NULL},
		{"--root", "/x", "--watch", "poll", NULL},
		{"--root", "/x", "--grace", "-1", NULL},
		{"--root", "/x", "--check-interval", "1s", NULL},
		{"--root", "/x", "--workers", "-1", NULL},
		{"--root", "/x", "--workers", "many", NULL},
		{"--root", "/x", "--max-restarts", "x", NULL},
		{"--root", "/x", "--restart-period", "0", NULL},
		{"--root", "/x", "--user", "no-such-user-of-hotmod", NULL},
	};
	char *root = mkroot(), *missing = at(root, "missing"), *out;
	const char *const no_root[] = {"--root", missing, "--listen", "127.0.0.1:0",
		"--allow-root", NULL};
	const char *const no_addr[] = {"--root", root, "--listen", "localhost:8080",
		"--allow-root", NULL};

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_msg(capture(bad[i], &out) == 2, "case %zu: %s", i, out);
		free(out);
	}
	ck_assert_int_eq(capture(no_root, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "error: "));
	free(out);
	ck_assert_int_eq(capture(no_addr, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "error: --listen localhost:8080: expected ADDRESS:PORT"));
	free(out);
	free(missing);
	rmroot(root);
}
END_TEST

/* ---- the harness's strict JSON ------------------------------------------------------- */

/*
 * The status and the notes are read with HTTPD_JSON_FLAGS: what the server
 * must never write is refused there, so that a test reading it fails.
 * Fails if a flag that lets more through is added (JSON_DECODE_ANY,
 * JSON_DISABLE_EOF_CHECK, JSON_ALLOW_NUL) or JSON_REJECT_DUPLICATES dropped.
 */
START_TEST(test_strict_json_refuses_what_the_server_must_never_emit)
{
	static const char *const bad[] = {
		/* not JSON */
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[1 2]",
		"[01]", "[1.]", "[.5]", "[-]", "[+1]", "[1e]", "[0x10]", "[NaN]", "[tru]",
		"[nul]", "[\"abc]", "[\"\x01\"]", "[\"\\x\"]", "[\"\\u12\"]", "['a']",
		"[\"a\"\"b\"]",
		/* not UTF-8, or not Unicode */
		"[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"\xff\"]",
		"[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]",
		/* JSON, but not what the server writes */
		"{\"a\":1,\"a\":2}", "[1] x", "[1] [2]", "1 2", "0", "\"\"", "null",
		"[\"nul\\u0000inside\"]",
	};
	static const char *const good[] = {
		"[0]", "[-0]", "[-0.5e+3]", "[1E-2]", "[true]", "[null]", "[\"\"]", "[]", "{}",
		" {\"a\" : [1, -2.5, true, false, null, \"\\u00e9\\n\\\"\\\\\\/\"]}\n",
		"[\"caf\xc3\xa9 \xf0\x9f\x98\x80 \\ud83d\\ude00\"]",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	json_error_t err;
	json_t *v;

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		v = json_strict(bad[i], strlen(bad[i]), &err);
		ck_assert_msg(!v, "accepted: %s", bad[i]);
	}
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		v = json_strict(good[i], strlen(good[i]), &err);
		ck_assert_msg(v, "refused: %s: %s", good[i], err.text);
		json_decref(v);
	}
	/* strings come decoded to UTF-8, numbers as numbers */
	const char *pair = "[\"\\ud83d\\ude00\"]";
	ck_assert_ptr_nonnull(v = json_strict(pair, strlen(pair), &err));
	ck_assert_str_eq(json_string_value(json_array_get(v, 0)), "\xf0\x9f\x98\x80");
	json_decref(v);
	const char *doc = "{\"a\":[1,{\"b\":-2.5}]}";
	ck_assert_ptr_nonnull(v = json_strict(doc, strlen(doc), &err));
	ck_assert(jnum(json_array_get(json_object_get(v, "a"), 1), "b") == -2.5);
	json_decref(v);
}
END_TEST

static Suite *httpd_suite(void)
{
	Suite *s = suite_create("httpd");
	TCase *samples = tcase_create("samples"), *reload = tcase_create("reload"),
	      *errors = tcase_create("errors"), *shutdown = tcase_create("shutdown"),
	      *cli = tcase_create("command line"), *json = tcase_create("json");

	tcase_add_checked_fixture(samples, httpd_setup, httpd_teardown);
	tcase_add_test(samples, test_hello_answers_with_its_greeting);
	tcase_add_test(samples, test_counter_counts_up_one_request_at_a_time);
	tcase_add_test(samples, test_slow_answers_after_the_delay_it_was_asked_for);
	tcase_add_test(samples, test_redirect_answers_with_greet_and_says_where_it_came_from);
	tcase_add_test(samples, test_greet_says_hello_to_the_name_or_to_the_world);
	tcase_add_test(samples, test_url_path_names_a_file_under_the_root);
	suite_add_tcase(s, samples);

	tcase_add_checked_fixture(reload, httpd_setup, httpd_teardown);
	tcase_add_test(reload, test_request_in_flight_finishes_on_v1_while_v2_answers_new_ones);
	tcase_add_test(reload, test_status_is_strict_json_and_shows_the_reload);
	tcase_add_test(reload, test_sighup_rescans_the_root);
	tcase_add_test(reload, test_install_deploys_log_no_error);
	tcase_add_test(reload, test_status_stays_json_with_a_directory_name_that_is_not_utf8);
	suite_add_tcase(s, reload);

	tcase_add_checked_fixture(errors, httpd_setup, httpd_teardown);
	tcase_add_test(errors, test_handler_failure_answers_a_bare_500_and_logs_why);
	tcase_add_test(errors, test_handler_4xx_before_failing_stands);
	tcase_add_test(errors, test_body_over_1_mib_gets_413_and_never_reaches_the_handler);
	tcase_add_test(errors, test_hostile_paths_answer_404_and_load_nothing);
	tcase_add_test(errors, test_a_url_cannot_forge_a_log_line);
	tcase_add_test(errors, test_a_symlink_out_of_the_root_records_nothing_for_a_request);
	tcase_add_test(errors, test_a_method_cannot_put_control_characters_into_the_log);
	tcase_add_test(errors,
		test_a_module_built_for_another_request_kind_answers_500_and_the_server_stays_up);
	tcase_add_test(errors, test_require_kind_refuses_a_module_that_declares_none);
	suite_add_tcase(s, errors);

	tcase_add_checked_fixture(shutdown, httpd_setup, httpd_teardown);
	tcase_add_test(shutdown,
		test_sigterm_finishes_the_request_in_flight_and_refuses_new_connections);
	suite_add_tcase(s, shutdown);

	tcase_add_test(cli, test_every_option_of_the_usage_is_in_the_manual);
	tcase_add_test(cli, test_a_wrong_command_line_exits_2_and_a_bad_root_or_address_1);
	suite_add_tcase(s, cli);

	tcase_add_test(json, test_strict_json_refuses_what_the_server_must_never_emit);
	suite_add_tcase(s, json);
	return s;
}

int main(void)
{
	return httpd_main("check_httpd", httpd_suite);
}
