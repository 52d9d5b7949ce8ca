/* SPDX-License-Identifier: MIT */
/*
 * check_httpd_workers.c - hotmod-httpd's worker processes, end to end: a
 * worker that dies (killed, or crashed by a handler) is replaced while the
 * others serve; workers that keep dying make the master give up with exit
 * status 3; a handler that does not return cannot keep SIGTERM from
 * ending the server; --workers 0 serves in one process; a crash names the
 * requests it cut short.  The crash is real: the probe fixture stores
 * through a null pointer (crash=1).
 */
#include "httpd_harness.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HELLO "Hello from hotmod!\n"

/* Wait until the master has n children other than gone; false after WAIT_S. */
static bool wait_workers(size_t n, pid_t gone, pid_t *out)
{
	for (int i = 0; i < WAIT_S * 100; i++) {
		size_t k = server_workers(out, 8);
		bool fresh = true;
		for (size_t j = 0; j < k; j++)
			fresh &= out[j] != gone;
		if (k == n && fresh)
			return true;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	return false;
}

/* A request whose worker dies under it: no answer at all. */
static void crash_one(void)
{
	struct resp r = http("GET", "/probe?crash=1", NULL, 0);

	ck_assert_msg(r.rc != CURLE_OK, "a crashed worker answered %ld", r.status);
	resp_free(&r);
}

START_TEST(test_a_killed_worker_is_replaced_while_the_other_serves)
{
	static const char *const opts[] = {"--workers", "2", NULL};
	pid_t before[8], after[8];

	server_start(opts);
	ck_assert(log_has("2 worker processes"));
	ck_assert_uint_eq(server_workers(before, 8), 2);
	ck_assert_int_eq(kill(before[0], SIGKILL), 0);
	ck_assert(log_wait(" was killed by Killed"));
	ck_assert(log_wait(" restarted (pid "));
	ck_assert(wait_workers(2, before[0], after));
	/* The other one was never touched. */
	ck_assert(after[0] == before[1] || after[1] == before[1]);
	expect("/hello", 200, HELLO);
	ck_assert(!log_has(" was serving ")); /* it served nothing when killed */
}
END_TEST

/* Whether the server's own crash handler ran: a sanitizer's report ends
 * the process before the signal does (then no crash line, no quarantine). */
static bool crash_handled(void)
{
	return !log_has("runtime error: ") && !log_has("Sanitizer");
}

START_TEST(test_a_handler_that_crashes_takes_down_its_worker_not_the_server)
{
	static const char *const opts[] = {"--workers", "2", NULL};

	server_start(opts);
	crash_one();
	ck_assert(log_has("http_probe v1: crashing"));
	/* SIGSEGV; under a sanitizer, its abort() or exit after the report. */
	ck_assert(log_wait(" restarted (pid "));
	ck_assert(log_has(" was killed by Segmentation fault") || log_has(" was killed by Aborted") ||
		  log_has(" exited with status "));
	/* The master read in the dead worker's tracks what it was serving,
	 * and what the crash handler found running. */
	ck_assert(log_has(" was serving GET /probe when it ended"));
	if (crash_handled()) {
		ck_assert(log_has("probe.so version 1 (sha256 "));
		ck_assert(log_has(") crashed worker "));
		ck_assert(log_has(" (SIGSEGV in handle)"));
	}
	/* Every other path is served on. */
	expect("/hello", 200, HELLO);
}
END_TEST

#define NO_LKG ") is quarantined, and it has no last-known-good build: refused until " \
	"the file changes"
#define LKG ") is quarantined: serving its last-known-good build (sha256 "

START_TEST(test_a_build_that_crashed_a_worker_is_quarantined_until_its_file_changes)
{
	/* One death allowed: the crash must not count for the kill below to
	 * leave the server running.  Its first build crashes at once: it
	 * never was good. */
	static const char *const opts[] = {"--workers", "1", "--max-restarts", "1", NULL};
	struct resp r;

	server_start(opts);
	crash_one();
	ck_assert(log_wait(" restarted (pid "));
	if (!crash_handled())
		return; /* a sanitizer ended it first: no record, nothing quarantined */
	ck_assert(log_has("probe.so version 1 (sha256 "));
	ck_assert(log_has(") is quarantined: workers serve its last-known-good build, if it has "
			  "one, until the file changes"));
	/* The new worker refuses that build, which has nothing to stand in
	 * for it: 503 for its path only. */
	r = get("/probe");
	ck_assert_int_eq(r.status, 503);
	resp_free(&r);
	ck_assert(log_has(NO_LKG));
	expect("/hello", 200, HELLO);
	/* The quarantine is the master's: workers started later, after every
	 * one was killed at once, refuse the build too. */
	pid_t w[8];
	ck_assert_uint_eq(server_workers(w, 8), 1);
	size_t refused = log_count(NO_LKG);
	ck_assert_int_eq(kill(w[0], SIGKILL), 0);
	ck_assert(wait_workers(1, w[0], w));
	r = get("/probe");
	ck_assert_int_eq(r.status, 503);
	resp_free(&r);
	ck_assert_uint_gt(log_count(NO_LKG), refused);
	/* Another build is offered, and serves. */
	char *other = rebuilt(fixture("http_v1"), "probe-rebuilt.so");
	install(other, "probe.so");
	ck_assert(answers("/probe", "v1\n"));
	free(other);
}
END_TEST

/* Whether dir's state file holds a line "KIND\tSHA\tTIME\tprobe.so...",
 * waited for: the master writes it within a second of the change. */
static bool state_says(const char *dir, const char *kind)
{
	char line[1024], state[4096 + 8];

	snprintf(state, sizeof state, "%s/state", dir);
	for (int i = 0; i < WAIT_S * 100; i++) {
		FILE *f = fopen(state, "r");
		bool found = false;
		while (f && !found && fgets(line, sizeof line, f))
			found = strncmp(line, kind, strlen(kind)) == 0 && line[strlen(kind)] == '\t' &&
				strstr(line, "\tprobe.so") != NULL;
		if (f)
			fclose(f);
		if (found)
			return true;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	return false;
}

/* n requests to /probe, each on a connection of its own (spread over the
 * workers by the kernel): every one answers body. */
static void all_answer(const char *body, int n)
{
	for (int i = 0; i < n; i++)
		expect("/probe", 200, body);
}

START_TEST(test_a_crashing_build_is_replaced_by_its_last_known_good_across_deaths_and_restarts)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/state", base);
	const char *const opts[] = {"--workers", "2", "--good-after", "0", "--state-dir", dir,
		NULL};
	pid_t w[8];

	server_start(opts);
	/* v1 serves, and becomes good at once (--good-after 0). */
	expect("/probe", 200, "v1\n");
	ck_assert(state_says(dir, "good"));
	/* v2 is deployed, serves, and crashes a worker on one request. */
	install(fixture("http_v2"), "probe.so");
	ck_assert(log_wait("worker 1 info: probe.so version 2 loaded"));
	ck_assert(log_wait("worker 2 info: probe.so version 2 loaded"));
	crash_one();
	ck_assert(log_wait(" restarted (pid "));
	if (!crash_handled())
		return; /* a sanitizer ended it first: no record, nothing quarantined */
	ck_assert(log_wait(") is quarantined: "));
	ck_assert(state_says(dir, "quarantined"));
	/* Both workers serve v1 in its place: the new one from its start, the
	 * other once its loader readmitted probe.so. */
	ck_assert(log_wait_lines("worker 1 warn: probe.so ", LKG, 1));
	ck_assert(log_wait_lines("worker 2 warn: probe.so ", LKG, 1));
	/* The survivor's third version (v1, v2, v1 again); the new worker's
	 * first, loaded before it serves. */
	ck_assert(log_wait_lines(" info: probe.so version 3 loaded in ",
		" ms from the bytes admit substituted", 1));
	all_answer("v1\n", 20);
	expect("/hello", 200, HELLO);

	/* Every worker killed at once: their replacements serve v1 too. */
	size_t before1 = log_count_lines("worker 1 warn: probe.so ", LKG),
	       before2 = log_count_lines("worker 2 warn: probe.so ", LKG);
	pid_t old[8];
	ck_assert_uint_eq(server_workers(old, 8), 2);
	ck_assert_int_eq(kill(old[0], SIGKILL), 0);
	ck_assert_int_eq(kill(old[1], SIGKILL), 0);
	ck_assert(log_wait_lines("worker 1 warn: probe.so ", LKG, before1 + 1));
	ck_assert(log_wait_lines("worker 2 warn: probe.so ", LKG, before2 + 1));
	ck_assert_uint_eq(server_workers(w, 8), 2);
	ck_assert(w[0] != old[0] && w[0] != old[1] && w[1] != old[0] && w[1] != old[1]);
	all_answer("v1\n", 10);

	/* The status says which build is quarantined, why, and what stands
	 * in for it. */
	json_t *st = status_get(), *b;
	size_t i;
	bool quarantined = false, lkg = false;
	json_array_foreach(json_object_get(st, "builds"), i, b) {
		if (strcmp(jstr(b, "path"), "probe.so") != 0)
			continue;
		if (strcmp(jstr(b, "state"), "quarantined") == 0) {
			quarantined = true;
			ck_assert_ptr_nonnull(strstr(jstr(b, "why"), "crashed worker "));
			ck_assert_ptr_nonnull(strstr(jstr(b, "why"), "(SIGSEGV in handle)"));
		}
		lkg |= strcmp(jstr(b, "state"), "last-known-good") == 0;
	}
	ck_assert(quarantined && lkg);
	json_decref(st);

	/* A full restart with the same --state-dir: v1 serves at once, though
	 * the file holds v2, which never runs again. */
	ck_assert_int_eq(server_stop(), 0);
	server_start(opts);
	ck_assert(log_has("builds known from before"));
	ck_assert(log_has(LKG));
	all_answer("v1\n", 10);

	/* A new build is offered, and serves. */
	char *other = rebuilt(fixture("http_v2"), "probe-rebuilt.so");
	install(other, "probe.so");
	ck_assert(answers("/probe", "v2\n"));
	free(other);
}
END_TEST

/* Requests to /probe until the log has line, for WAIT_S at most: each on
 * a connection of its own, so that both workers get some.  Every answer
 * is one of the bodies (or a 500 when fail500). */
static bool requests_until(const char *line, const char *b1, const char *b2, bool fail500)
{
	time_t end = time(NULL) + WAIT_S;

	while (!log_has(line) && time(NULL) < end) {
		struct resp r = get("/probe");
		ck_assert_int_eq(r.rc, CURLE_OK);
		if (r.status == 500)
			ck_assert(fail500);
		else
			ck_assert_msg(r.status == 200 && (strcmp(r.body, b1) == 0 ||
				strcmp(r.body, b2) == 0), "%ld %s", r.status, r.body);
		resp_free(&r);
	}
	return log_has(line);
}

START_TEST(test_a_canary_that_fails_is_reverted_and_a_good_one_promoted)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/state", base);
	/* Judged by the requests only: no time decides. */
	const char *const opts[] = {"--workers", "2", "--good-after", "0", "--state-dir", dir,
		"--canary", "--canary-requests", "20", "--canary-time", "3600", NULL};

	server_start(opts);
	expect("/probe", 200, "v1\n");
	ck_assert(state_says(dir, "good"));

	/* A build that fails every other request: worker 1 serves it, worker
	 * 2 holds it back and serves v1, until the master reverts it. */
	install(fixture("http_flaky"), "probe.so");
	ck_assert(log_wait(") is a canary: it serves in this worker"));
	ck_assert(log_wait(") is a canary in worker 1: serving the last-known-good build"));
	ck_assert(requests_until(" requests as a canary (the last-known-good ", "v3\n", "v1\n",
		true));
	ck_assert(log_has(": reverted and quarantined"));
	ck_assert(!log_has(": promoted to every worker"));
	ck_assert(state_says(dir, "quarantined"));
	/* Worker 1 readmitted probe.so: v1 (its third version: v1, v3, v1)
	 * stands in for the reverted build. */
	ck_assert(log_wait_lines("worker 1 info: probe.so version 3 loaded in ",
		" ms from the bytes admit substituted", 1));
	all_answer("v1\n", 20);

	/* A good build: promoted after its 20 requests, then served by both. */
	install(fixture("http_v2"), "probe.so");
	ck_assert(log_wait(") is a canary: it serves in this worker"));
	ck_assert(requests_until(": promoted to every worker", "v2\n", "v1\n", false));
	/* 20, or a few more that came before the master judged it */
	ck_assert(log_has(" requests as a canary, 0 failed (the last-known-good "));
	/* Worker 2 readmitted it: v2, its second version. */
	ck_assert(log_wait("worker 2 info: probe.so version 2 loaded"));
	all_answer("v2\n", 20);
	expect("/hello", 200, HELLO);
}
END_TEST

START_TEST(test_workers_that_keep_dying_make_the_master_give_up)
{
	static const char *const opts[] = {"--workers", "1", "--max-restarts", "2",
		"--restart-period", "600", NULL};
	pid_t w[8], prev = 0;

	server_start(opts);
	/* Deaths no module version is known for (a module's crash is
	 * quarantined and not counted): each counts. */
	for (int i = 0; i < 3; i++) {
		ck_assert(wait_workers(1, prev, w));
		prev = w[0];
		ck_assert_int_eq(kill(prev, SIGKILL), 0);
	}
	ck_assert_int_eq(server_reap(), 3);
	ck_assert(log_has("workers died 3 times within 600 s (--max-restarts 2, "
			  "--restart-period 600): stopping"));
	ck_assert_uint_eq(log_count(" restarted (pid "), 2);
	ck_assert(server_refuses_connections());
}
END_TEST

/* SIGTERM while a handler is held at the gate, with a grace of 100 ms. */
static void stop_with_a_handler_held(const char *workers)
{
	const char *const opts[] = {"--grace", "100", "--workers", workers, NULL};
	char *path = gated("/probe");
	struct bg held;

	server_start(opts);
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	ck_assert_int_eq(server_kill(SIGTERM), 0);
	ck_assert_int_eq(server_reap(), 0);
	ck_assert(log_has("1 request still running after 100 ms: abandoned"));
	ck_assert(log_has("abandoned: 127.0.0.1 \"GET /probe\" after "));
	ck_assert(!log_has("probe.so version 1 unloaded")); /* it still ran */
	pthread_join(held.thread, NULL); /* its connection closed, unanswered */
	ck_assert_int_ne(held.r.rc, CURLE_OK);
	resp_free(&held.r);
	free(held.path);
	free(path);
}

START_TEST(test_sigterm_abandons_a_handler_that_does_not_return_within_the_grace)
{
	stop_with_a_handler_held("1");
}
END_TEST

START_TEST(test_sigterm_abandons_it_in_a_single_process_too)
{
	stop_with_a_handler_held("0");
}
END_TEST

START_TEST(test_workers_0_serves_in_one_process)
{
	static const char *const opts[] = {"--workers", "0", NULL};
	pid_t none[8];

	server_start(opts);
	ck_assert(log_has(", 16 handler threads"));
	ck_assert(!log_has(" worker process"));
	expect("/hello", 200, HELLO);
	ck_assert_uint_eq(server_workers(none, 8), 0);
}
END_TEST

START_TEST(test_a_crash_in_a_single_process_names_its_module_as_it_dies)
{
	static const char *const opts[] = {"--workers", "0", NULL};

	server_start(opts);
	crash_one();
	int status = server_reap();
	/* SIGSEGV; under a sanitizer, the exit after its report */
	ck_assert_int_ne(status, 0);
	if (crash_handled()) {
		ck_assert_int_eq(status, 128 + SIGSEGV);
		ck_assert(log_has("hotmod-httpd: probe.so version 1 (sha256 "));
		ck_assert(log_has(") crashed the server (SIGSEGV in handle)"));
	}
}
END_TEST

START_TEST(test_sighup_reaches_every_worker)
{
	static const char *const opts[] = {"--workers", "2", NULL};

	server_start(opts);
	ck_assert_int_eq(server_kill(SIGHUP), 0);
	ck_assert(log_wait("worker 1 info: SIGHUP: rescanning"));
	ck_assert(log_wait("worker 2 info: SIGHUP: rescanning"));
}
END_TEST

START_TEST(test_workers_of_a_killed_master_stop)
{
	static const char *const opts[] = {"--workers", "2", NULL};
	pid_t w[8];

	server_start(opts);
	ck_assert_uint_eq(server_workers(w, 8), 2);
	ck_assert_int_eq(server_kill(SIGKILL), 0);
	ck_assert_int_eq(server_reap(), 128 + SIGKILL);
	/* The kernel sends them SIGTERM (PR_SET_PDEATHSIG): they stop. */
	ck_assert(log_wait("worker 1 info: stopped"));
	ck_assert(log_wait("worker 2 info: stopped"));
}
END_TEST

START_TEST(test_a_state_dir_in_the_root_or_writable_by_others_is_refused)
{
	char in_root[4096], open_dir[4096], *out;
	snprintf(in_root, sizeof in_root, "%s/state", www);
	snprintf(open_dir, sizeof open_dir, "%s/open", base);
	const char *const inside[] = {"--root", www, "--listen", "127.0.0.1:0", "--allow-root",
		"--state-dir", in_root, NULL};
	const char *const writable[] = {"--root", www, "--listen", "127.0.0.1:0",
		"--allow-root", "--state-dir", open_dir, NULL};

	/* Kept builds below the root would be served: refused, nothing left. */
	ck_assert_int_eq(capture(inside, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, ": inside the root "));
	ck_assert_int_eq(access(in_root, F_OK), -1);
	free(out);
	/* Whoever can write in it could quarantine any build. */
	ck_assert_int_eq(mkdir(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(open_dir, 0777), 0);
	ck_assert_int_eq(capture(writable, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "which no one else can write to"));
	free(out);
}
END_TEST

START_TEST(test_serving_as_root_needs_user_or_allow_root)
{
	const char *const args[] = {"--root", www, "--listen", "127.0.0.1:0", NULL};
	char *out;

	if (geteuid() != 0)
		return; /* only root is refused */
	ck_assert_int_eq(capture(args, &out), 2);
	ck_assert_ptr_nonnull(strstr(out, "refusing to serve as root"));
	ck_assert_ptr_nonnull(strstr(out, "--user NAME"));
	ck_assert_ptr_nonnull(strstr(out, "--allow-root"));
	free(out);
}
END_TEST

START_TEST(test_workers_serve_as_the_user_given_while_the_master_stays_root)
{
	static const char *const opts[] = {"--user", "nobody", "--workers", "2", NULL};
	struct passwd *nobody = getpwnam("nobody");
	pid_t w[8];

	if (geteuid() != 0 || !nobody)
		return; /* nothing to drop */
	server_start(opts);
	ck_assert(log_has(", as user nobody, 2 worker processes"));
	ck_assert_uint_eq(server_workers(w, 8), 2);
	ck_assert_int_eq(proc_status(w[0], "Uid"), (long)nobody->pw_uid);
	ck_assert_int_eq(proc_status(w[1], "Uid"), (long)nobody->pw_uid);
	ck_assert_int_eq(proc_status(server_pid(), "Uid"), 0);
	expect("/hello", 200, HELLO);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("httpd workers");
	TCase *life = tcase_create("life"), *stop = tcase_create("stop");

	tcase_add_checked_fixture(life, httpd_setup, httpd_teardown);
	tcase_set_timeout(life, 120);
	tcase_add_test(life, test_a_killed_worker_is_replaced_while_the_other_serves);
	tcase_add_test(life, test_a_handler_that_crashes_takes_down_its_worker_not_the_server);
	tcase_add_test(life, test_a_build_that_crashed_a_worker_is_quarantined_until_its_file_changes);
	tcase_add_test(life,
		test_a_crashing_build_is_replaced_by_its_last_known_good_across_deaths_and_restarts);
	tcase_add_test(life, test_a_canary_that_fails_is_reverted_and_a_good_one_promoted);
	tcase_add_test(life, test_a_state_dir_in_the_root_or_writable_by_others_is_refused);
	tcase_add_test(life, test_workers_0_serves_in_one_process);
	tcase_add_test(life, test_a_crash_in_a_single_process_names_its_module_as_it_dies);
	tcase_add_test(life, test_sighup_reaches_every_worker);
	tcase_add_test(life, test_serving_as_root_needs_user_or_allow_root);
	tcase_add_test(life, test_workers_serve_as_the_user_given_while_the_master_stays_root);
	suite_add_tcase(s, life);

	tcase_add_checked_fixture(stop, httpd_setup, httpd_teardown);
	tcase_set_timeout(stop, 120);
	tcase_add_test(stop, test_workers_that_keep_dying_make_the_master_give_up);
	tcase_add_test(stop, test_sigterm_abandons_a_handler_that_does_not_return_within_the_grace);
	tcase_add_test(stop, test_sigterm_abandons_it_in_a_single_process_too);
	tcase_add_test(stop, test_workers_of_a_killed_master_stop);
	suite_add_tcase(s, stop);
	return s;
}

int main(void)
{
	return httpd_main("check_httpd_workers", suite);
}
