/* SPDX-License-Identifier: MIT */
/*
 * check_httpd_limits.c - what a client or a handler can hold in
 * hotmod-httpd, end to end over real sockets: a flood of idle connections
 * and of clients that send their head a byte at a time costs no thread and
 * does not keep /hello from answering, and the header deadline closes
 * them; a handler that blocks holds up no other client; a handler past
 * --request-timeout gets its client a 503 at once; a full handler pool
 * answers 503 after --queue-timeout; a handler past --harakiri has its
 * worker replaced (with --workers 0 it is only logged).  Handlers are
 * held with the probe's gate (no sleeps).
 */
#include "httpd_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELLO "Hello from hotmod!\n"

/* The one worker of --workers 1. */
static pid_t worker(void)
{
	pid_t w[8];

	ck_assert_uint_eq(server_workers(w, 8), 1);
	return w[0];
}

/* Send all of s on fd. */
static void send_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

/* Send request on a connection of its own; the server answers 503 with
 * Retry-After and closes.  The answer in buf. */
static void answered_503(const char *request, char *buf, size_t size)
{
	int fd = server_connect();

	send_all(fd, request);
	ck_assert(closed_by_server(fd, buf, size));
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "got %s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "\r\nRetry-After: 1\r\n"));
}

START_TEST(test_idle_and_slowloris_clients_cost_no_thread_and_are_closed)
{
	static const char *const opts[] = {"--header-timeout", "3", "--threads", "4", NULL};
	enum { IDLE = 10000, SLOW = 2000 };
	struct rlimit rl;
	int *fds;
	size_t n = IDLE + SLOW, idle, slow;

	/* This process holds every connection: its soft limit up to the hard
	 * one; fewer connections where even that is lower. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < n + 2048)
		n = rl.rlim_cur > 4096 ? rl.rlim_cur - 2048 : 2048;
	slow = n * SLOW / (IDLE + SLOW);
	idle = n - slow;
	if (n < IDLE + SLOW)
		fprintf(stderr, "descriptor limit %llu: %zu idle and %zu slow clients\n",
			(unsigned long long)rl.rlim_cur, idle, slow);

	server_start(opts);
	pid_t w = worker();
	ck_assert_ptr_nonnull(fds = calloc(n, sizeof *fds));
	for (size_t i = 0; i < n; i++) {
		fds[i] = server_connect();
		/* A head begun, never finished (on a busy machine, the
		 * deadline may have closed the connection already). */
		if (i >= idle)
			(void)!send(fds[i], "GET /hello HTTP/1.1\r\nHost: x\r\n", 30,
				MSG_NOSIGNAL);
	}
	/* Every connection is open, and served by no thread of its own: the
	 * worker has its loop, its handler threads and the loader's. */
	long threads = proc_status(w, "Threads");
	ck_assert_int_gt(threads, 0);
	ck_assert_int_le(threads, 4 + 8);
	for (int round = 0; round < 3; round++) {
		for (size_t i = idle; i < n; i++) /* one more byte each */
			(void)!send(fds[i], "X", 1, MSG_NOSIGNAL);
		expect("/hello", 200, HELLO);
	}
	/* The header deadline closes every one of them, unanswered. */
	for (size_t i = 0; i < n; i++) {
		char buf[256];
		ck_assert_msg(closed_by_server(fds[i], buf, sizeof buf),
			"connection %zu of %zu stayed open", i, n);
		ck_assert_str_eq(buf, "");
		close(fds[i]);
	}
	free(fds);
	expect("/hello", 200, HELLO);
	ck_assert(!log_has(" error: "));
}
END_TEST

START_TEST(test_a_blocked_handler_holds_up_no_other_client)
{
	char *path = gated("/probe");
	struct bg held;

	server_start(NULL);
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	expect("/hello", 200, HELLO);
	expect("/probe", 200, "v1\n"); /* the same module, too */
	ck_assert(gate_release());
	struct resp r = bg_join(&held);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(path);
}
END_TEST

START_TEST(test_a_handler_past_the_request_timeout_gets_its_client_503_at_once)
{
	static const char *const opts[] = {"--request-timeout", "1", NULL};
	char *path = gated("/probe"), req[512], buf[1024];

	server_start(opts);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	/* The answer comes while the handler is still parked. */
	answered_503(req, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "\r\nConnection: close\r\n"));
	ck_assert(log_has("http_probe v1: parked"));
	/* logged once the client had its answer */
	ck_assert(log_wait("\"GET /probe\": no answer after "));
	expect("/hello", 200, HELLO);
	/* Let it go: its response is dropped, the worker serves on. */
	ck_assert(gate_release());
	ck_assert(log_wait("\"GET /probe\" 503 20 "));
	ck_assert(log_has("(answered 503 at --request-timeout)"));
	expect("/probe", 200, "v1\n");
	free(path);
}
END_TEST

START_TEST(test_a_full_handler_pool_answers_503_after_the_queue_timeout)
{
	static const char *const opts[] = {"--threads", "1", "--queue-timeout", "1", NULL};
	char *path = gated("/probe"), buf[1024];
	struct bg held;

	server_start(opts);
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	/* The one handler thread is held: /hello waits, then gets 503. */
	answered_503("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
		sizeof buf);
	ck_assert(gate_release());
	struct resp r = bg_join(&held);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	expect("/hello", 200, HELLO);
	free(path);
}
END_TEST

START_TEST(test_a_handler_past_harakiri_has_its_worker_replaced)
{
	static const char *const opts[] = {"--request-timeout", "1", "--harakiri", "2",
		"--grace", "100", NULL};
	char *path = gated("/probe");
	struct bg held;

	server_start(opts);
	pid_t first = worker();
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	ck_assert(log_wait("worker 1 restarted (pid "));
	ck_assert(log_has("\"GET /probe\" has been in its handler for "));
	ck_assert(log_has(" s, past --harakiri: this worker is replaced"));
	ck_assert(log_has("worker 1 stopped to be replaced"));
	ck_assert(log_has("worker 1 was serving GET /probe when it ended"));
	struct resp r = bg_join(&held); /* answered 503 at the request timeout */
	ck_assert_int_eq(r.status, 503);
	resp_free(&r);
	ck_assert_int_ne(worker(), first);
	ck_assert(answers("/hello", HELLO));
	free(path);
}
END_TEST

/* --inline-handlers: handlers run on the loop, and serve; one that hangs
 * still has its worker replaced (the watchdog sees it), and its client
 * gets no answer: --request-timeout cannot answer from the loop it
 * holds. */
/* A handler that gives up waiting for a lock (hm_lock) another request
 * holds: its client gets 503 with Retry-After, not 500. */
START_TEST(test_a_lock_not_had_in_time_answers_503)
{
	char *gate = gated("/probe"), path[8192], buf[1024];
	struct bg held;

	ck_assert_int_lt(snprintf(path, sizeof path, "%s&lock=cart:1", gate), (int)sizeof path);
	server_start(NULL);
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	/* The parked request holds cart:1: this one gives up after 200 ms. */
	answered_503("GET /probe?lock=cart:1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		buf, sizeof buf);
	expect("/probe?lock=cart:2", 200, "v1\n"); /* another lock is free */
	ck_assert(gate_release());
	struct resp r = bg_join(&held);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	expect("/probe?lock=cart:1", 200, "v1\n"); /* released at its end */
	free(gate);
}
END_TEST

START_TEST(test_inline_handlers_serve_and_a_stuck_one_is_replaced)
{
	static const char *const opts[] = {"--inline-handlers", "--request-timeout", "1",
		"--harakiri", "2", "--grace", "100", NULL};
	char *path = gated("/probe");
	struct bg held;

	server_start(opts);
	expect("/hello", 200, HELLO);
	expect("/probe", 200, "v1\n");
	pid_t first = worker();
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	ck_assert(log_wait("worker 1 restarted (pid "));
	ck_assert(log_has(" s, past --harakiri: this worker is replaced"));
	ck_assert(!log_has("answered 503, the handler still runs"));
	/* Its worker ended with it: no answer at all (not bg_join(), which
	 * wants one). */
	pthread_join(held.thread, NULL);
	ck_assert_int_ne(held.r.rc, CURLE_OK);
	free(held.path);
	resp_free(&held.r);
	ck_assert_int_ne(worker(), first);
	ck_assert(answers("/hello", HELLO));
	free(path);
}
END_TEST

START_TEST(test_harakiri_in_a_single_process_is_only_logged)
{
	static const char *const opts[] = {"--workers", "0", "--request-timeout", "1",
		"--harakiri", "2", NULL};
	char *path = gated("/probe");
	struct bg held;

	server_start(opts);
	bg_start(&held, path);
	ck_assert(log_wait("http_probe v1: parked"));
	ck_assert(log_wait(" s, past --harakiri"));
	ck_assert(!log_has("this worker is replaced"));
	expect("/hello", 200, HELLO); /* no master to replace it: it serves on */
	ck_assert(gate_release());
	struct resp r = bg_join(&held);
	ck_assert_int_eq(r.status, 503);
	resp_free(&r);
	free(path);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("httpd limits");
	TCase *t = tcase_create("limits");

	tcase_add_checked_fixture(t, httpd_setup, httpd_teardown);
	tcase_set_timeout(t, 240);
	tcase_add_test(t, test_idle_and_slowloris_clients_cost_no_thread_and_are_closed);
	tcase_add_test(t, test_a_blocked_handler_holds_up_no_other_client);
	tcase_add_test(t, test_a_handler_past_the_request_timeout_gets_its_client_503_at_once);
	tcase_add_test(t, test_a_full_handler_pool_answers_503_after_the_queue_timeout);
	tcase_add_test(t, test_a_handler_past_harakiri_has_its_worker_replaced);
	tcase_add_test(t, test_harakiri_in_a_single_process_is_only_logged);
	tcase_add_test(t, test_inline_handlers_serve_and_a_stuck_one_is_replaced);
	tcase_add_test(t, test_a_lock_not_had_in_time_answers_503);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return httpd_main("check_httpd_limits", suite);
}
