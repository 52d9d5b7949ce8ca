/* SPDX-License-Identifier: MIT */
/*
 * check_faults.c - every failure of every fallible call, one at a time
 * (configure --enable-fault-injection; loader/fault.h).
 *
 * For each operation, N walks upward from 1: the Nth fallible call the
 * library makes fails, as the system would fail it.  At every N the
 * operation must return (no crash, no hang: Check's timeout catches one),
 * fail with an error and a message or succeed, leave the working version
 * serving, and - under LeakSanitizer, as CI builds it - leak nothing.  The
 * walk ends at the first N the operation no longer reaches.
 *
 * Each walk runs twice (a loop test): failing the Nth call only, and
 * failing the Nth call and every one after it, so that what a failure
 * falls back to fails too (a retry, a cleanup, the membarrier give-up).
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

void hm__fault_arm(long n);
void hm__fault_arm_from(long n);
long hm__fault_fired(void);

#define WALK_MAX 5000

/* The walk's mode, from the loop test's index: bit 0 set fails every call
 * from the Nth on. */
static int mode;

static long armed_n; /* the walk's N, for messages */

static void arm(long n)
{
	armed_n = n;
	if (mode & 1)
		hm__fault_arm_from(n);
	else
		hm__fault_arm(n);
}

static const char *mode_name(void)
{
	return mode & 1 ? "from the Nth on" : "one by one";
}

static char *root;
static struct fx_app app;

static void setup(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("global_v1", root, "_global.so");
}

static void teardown(void)
{
	rmroot(root);
}

/* No log: a logger would add fallible calls (formatting) to every walk. */
static hm_loader *open_plain(int watch, unsigned flags)
{
	return open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER, .watch = watch,
		.removal_delay_ms = LIB_DEFAULT, .flags = flags, .quiet = true);
}

/* The module answers: its version, after recovering a first load. */
static int serves_path(hm_loader *l, const char *path)
{
	struct fx_req req = {0};
	int rc = hm_dispatch(l, path, &req);

	if (rc < 0) { /* a first load that failed may be remembered: retry it */
		ck_assert_int_ge(hm_refresh(l, path), 0);
		rc = hm_dispatch(l, path, &req);
	}
	ck_assert_msg(rc == 1 || rc == 2, "dispatch: %d %s", rc, hm_errmsg());
	return rc;
}

static int serves(hm_loader *l)
{
	return serves_path(l, "m");
}

/* A failed call says why. */
static void failed_with_reason(int rc)
{
	ck_assert_int_lt(rc, 0);
	ck_assert_str_ne(hm_errmsg(), "no error");
	ck_assert_str_ne(hm_strerror(rc), "unknown error");
}

/* The walk ended, and not before it failed a good number of calls. */
static void walked(long n)
{
	ck_assert_int_lt(n, WALK_MAX);
	ck_assert_int_ge(n, 8);
	fprintf(stderr, "%s: %ld fallible calls failed %s\n", tcase_name(), n - 2,
		mode_name());
}

/* Closed, every version finalised: bounded, so that a version never
 * finalised (a leak) fails the walk with its reason instead of hanging it. */
static void close_clean(hm_loader *l)
{
	int rc = hm_close(l, 30000);

	ck_assert_msg(rc == 0, "N=%ld %s: hm_close: %s", armed_n, mode_name(), hm_errmsg());
	ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
	memset(&app, 0, sizeof app);
}

/* Loop index: bit 0 the mode; bit 1 HM_WATCH_AUTO (which asks the file
 * system's type first) instead of HM_WATCH_INOTIFY. */
START_TEST(test_every_failure_in_open_is_an_error_or_is_survived)
{
	long n, fired = 1;

	mode = _i;
	for (n = 1; fired && n < WALK_MAX; n++) {
		struct hm_options o;
		hm_loader *l = NULL;

		hm_options_init(&o);
		o.root = root;
		o.app = &app;
		o.watch = _i & 2 ? HM_WATCH_AUTO : HM_WATCH_INOTIFY;
		o.flags = HM_OPEN_PRELOAD;
		arm(n);
		int rc = hm_open(&l, &o);
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc < 0) {
			failed_with_reason(rc);
			ck_assert_ptr_null(l);
			continue;
		}
		app.loader = l;
		serves(l); /* a failed preload is retried on request */
		close_clean(l);
	}
	walked(n);
}
END_TEST

/* Loop index: bit 0 the mode; bit 1 a module in a subdirectory, whose
 * directories are checked on the way. */
START_TEST(test_every_failure_in_a_first_load_is_an_error)
{
	const char *path = _i & 2 ? "d/m" : "m";
	long n, fired = 1;

	mode = _i;
	if (_i & 2)
		deploy_cp("probe_v1", root, "d/m.so");
	for (n = 1; fired && n < WALK_MAX; n++) {
		hm_loader *l = open_plain(HM_WATCH_STAT, 0);
		struct fx_req req = {0};

		arm(n);
		int rc = hm_dispatch(l, path, &req);
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc != 1)
			failed_with_reason(rc);
		ck_assert_int_eq(serves_path(l, path), 1);
		close_clean(l);
	}
	walked(n);
}
END_TEST

/* Reload probe_v1 -> probe_v2 by hm_refresh() with the Nth call failing,
 * on a loader opened with flags. */
static void walk_reload(unsigned flags)
{
	long n, fired = 1;

	for (n = 1; fired && n < WALK_MAX; n++) {
		deploy_mv("probe_v1", root, "m.so");
		hm_loader *l = open_plain(HM_WATCH_STAT, flags);
		ck_assert_int_eq(serves(l), 1);
		deploy_mv("probe_v2", root, "m.so");

		arm(n);
		int rc = hm_refresh(l, "m");
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc == 1) {
			ck_assert_int_eq(serves(l), 2);
		} else {
			failed_with_reason(rc);
			ck_assert_int_ne(rc, HM_EPROBE); /* a failing call is no crash */
			ck_assert_int_eq(serves(l), 1); /* the old version serves on */
			ck_assert_int_eq(hm_refresh(l, "m"), 1);
			ck_assert_int_eq(serves(l), 2);
		}
		close_clean(l);
	}
	walked(n);
}

START_TEST(test_every_failure_in_a_reload_keeps_the_working_version)
{
	mode = _i;
	walk_reload(0);
}
END_TEST

/* The same with HM_OPEN_PROBE: the probe's calls fail too (its pipe, its
 * process, reading its output), as system errors, never as a crash. */
START_TEST(test_every_failure_in_a_probed_reload_keeps_the_working_version)
{
	mode = _i;
	walk_reload(HM_OPEN_PROBE);
}
END_TEST

/* admit for the walk below: the file's own bytes, or probe_v1's instead. */
static bool substitute;

static int admit_v1(void *arg, struct hm_admission *a)
{
	(void)arg;
	if (substitute)
		a->substitute_fd = open(fixture("probe_v1"), O_RDONLY | O_CLOEXEC);
	return 0;
}

/* The file holds probe_v2; admit now substitutes probe_v1, and
 * hm_readmit() loads it with the Nth call failing: v2 serves on, or v1
 * serves. */
START_TEST(test_every_failure_in_a_readmit_keeps_the_working_version)
{
	long n, fired = 1;

	mode = _i;
	deploy_mv("probe_v2", root, "m.so");
	for (n = 1; fired && n < WALK_MAX; n++) {
		hm_loader *l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER,
			.watch = HM_WATCH_STAT, .removal_delay_ms = LIB_DEFAULT, .quiet = true,
			.admit = admit_v1);
		substitute = false;
		ck_assert_int_eq(serves(l), 2);
		substitute = true;

		arm(n);
		int rc = hm_readmit(l, "m.so");
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc == 1) {
			ck_assert_int_eq(serves(l), 1);
		} else {
			failed_with_reason(rc);
			ck_assert_int_eq(serves(l), 2); /* the old version serves on */
			ck_assert_int_eq(hm_readmit(l, "m.so"), 1);
			ck_assert_int_eq(serves(l), 1);
		}
		close_clean(l);
	}
	walked(n);
}
END_TEST

/* Two locks, one taken twice, with the Nth call failing: each is had or
 * fails with a reason, and the request's end frees whatever was had. */
static long lock_fired;

static void take_locks(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	arm(armed_n);
	static const char *const names[] = {"a", "b", "a"};
	for (int i = 0; i < 3; i++) {
		int rc = hm_lock(ctx, names[i], i ? HM_LOCK_SHARED : HM_LOCK_EXCLUSIVE, 0);
		if (rc != 0)
			failed_with_reason(rc);
	}
	lock_fired = hm__fault_fired();
	hm__fault_arm(0);
}

START_TEST(test_every_failure_in_taking_locks_is_an_error_and_leaks_nothing)
{
	long n;

	mode = _i;
	hm_loader *l = open_plain(HM_WATCH_STAT, 0);
	ck_assert_int_eq(serves(l), 1);
	lock_fired = 1;
	for (n = 1; lock_fired && n < WALK_MAX; n++) {
		struct fx_req req = {.in_handle = take_locks};
		armed_n = n;
		ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	}
	close_clean(l);
	walked(n);
}
END_TEST

/* Loop index: bit 0 the mode; bit 1 a writer (cp: the file is written in
 * place, a pending look) and a new directory, instead of a rename. */
START_TEST(test_every_failure_in_the_watcher_keeps_the_working_version)
{
	char *dir = at(root, "d");
	long n, fired = 1;

	mode = _i;
	for (n = 1; fired && n < WALK_MAX; n++) {
		deploy_mv("probe_v1", root, "m.so");
		hm_loader *l = open_plain(HM_WATCH_INOTIFY, HM_OPEN_NO_THREAD);
		ck_assert_int_eq(serves(l), 1);
		hm_watch_process(l); /* what opening and loading stirred up */
		if (_i & 2) {
			deploy_cp("probe_v2", root, "m.so");
			ck_assert_int_eq(mkdir(dir, 0755), 0);
		} else {
			deploy_mv("probe_v2", root, "m.so");
		}

		arm(n);
		int rc = hm_watch_process(l);
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc < 0)
			failed_with_reason(rc);
		int v = serves(l); /* the old version, or the new one */
		if (v == 1) {
			/* The failure cost the event, or was taken for the file's
			 * (a failed dlopen says why only in text): hm_refresh()
			 * retries. */
			ck_assert_int_eq(hm_refresh(l, "m"), 1);
			ck_assert_int_eq(serves(l), 2);
		}
		close_clean(l);
		if (_i & 2)
			ck_assert_int_eq(rmdir(dir), 0);
	}
	walked(n);
	free(dir);
}
END_TEST

/* hm_close() with a timeout, so that its timed wait is walked too. */
START_TEST(test_every_failure_in_status_and_close_is_survived)
{
	long n, fired = 1;

	mode = _i;
	for (n = 1; fired && n < WALK_MAX; n++) {
		hm_loader *l = open_plain(HM_WATCH_INOTIFY, 0);
		struct hm_status *st = NULL;

		ck_assert_int_eq(serves(l), 1);
		arm(n);
		int rc = hm_status_get(l, &st);
		long fired_status = hm__fault_fired();
		int crc = fired_status ? 0 : hm_close(l, 60000);
		fired = fired_status || hm__fault_fired();
		hm__fault_arm(0);
		if (rc < 0) {
			failed_with_reason(rc);
			ck_assert_ptr_null(st);
		} else {
			ck_assert_uint_ge(st->nmodules, 2);
			hm_status_free(st);
		}
		if (fired_status) { /* close was not reached under the fault */
			close_clean(l);
			continue;
		}
		if (crc == HM_ETIMEDOUT) {
			/* The wait failed, or could not be timed: the loader is
			 * still allocated and closing, and closes when called
			 * again (hm_open(3)). */
			failed_with_reason(crc);
			crc = hm_close(l, 30000);
		}
		/* close cannot fail otherwise: it only frees */
		ck_assert_msg(crc == 0, "N=%ld %s: hm_close: %s", n, mode_name(), hm_errmsg());
		ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
		memset(&app, 0, sizeof app);
	}
	walked(n);
}
END_TEST

/*
 * What a process does once - the probe's set-up, the hazard slots'
 * pthread_once and thread key, a thread's first slots - fails in a fresh
 * process: each N runs in a child of its own, which opens a loader with
 * HM_OPEN_PROBE and makes its first hm_dispatch() (of a module loaded
 * before, so that the walk stays short).  Its exit status says how it
 * went; LeakSanitizer checks the child when it exits.
 */
enum { CHILD_OK = 0, CHILD_NOT_REACHED = 3 };

static int first_in_process(long n)
{
	struct hm_options o;
	struct fx_req req = {0};
	hm_loader *l = open_plain(HM_WATCH_STAT, 0), *probing = NULL;
	hm_module *v;

	/* The probe passes it on: its copy is made once, here. */
	ck_assert_int_eq(setenv("LD_LIBRARY_PATH", getenv("LD_LIBRARY_PATH") ?
		getenv("LD_LIBRARY_PATH") : "/nonexistent", 1), 0);

	ck_assert_int_eq(hm_get(l, "m", &v), 0); /* loaded; no slots yet */
	hm_put(v);
	hm_options_init(&o);
	o.root = root;
	o.watch = HM_WATCH_STAT;
	o.flags = HM_OPEN_PROBE;
	arm(n);
	int prc = hm_open(&probing, &o);
	int crc = prc == 0 ? hm_close(probing, -1) : 0;
	int rc = hm_dispatch(l, "m", &req);
	long fired = hm__fault_fired();
	hm__fault_arm(0);
	if (prc < 0) {
		failed_with_reason(prc);
		ck_assert_ptr_null(probing);
	}
	ck_assert_int_eq(crc, 0);
	if (rc != 1)
		failed_with_reason(rc);
	/* Slots, or references where they could not be had. */
	ck_assert_int_eq(serves(l), 1);
	ck_assert_int_eq(serves(l), 1);
	close_clean(l);
	return fired ? CHILD_OK : CHILD_NOT_REACHED;
}

START_TEST(test_every_failure_in_a_process_first_dispatch_is_survived)
{
	long n;
	int status = 0;

	mode = _i;
	for (n = 1; n < WALK_MAX; n++) {
		fflush(NULL);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			/* A failed assertion exits non-zero; exit(), not _exit():
			 * LeakSanitizer checks at exit. */
			exit(first_in_process(n));
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status), "N=%ld: child killed by signal %d", n,
			WTERMSIG(status));
		if (WEXITSTATUS(status) == CHILD_NOT_REACHED)
			break;
		ck_assert_msg(WEXITSTATUS(status) == 0, "N=%ld: child failed (%d)", n,
			WEXITSTATUS(status));
	}
	walked(n + 1);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *c = tcase_create("walk");

	tcase_add_checked_fixture(c, setup, teardown);
	tcase_set_timeout(c, 600);
	/* Loop index: bit 0 is the mode (see arm()). */
	tcase_add_loop_test(c, test_every_failure_in_open_is_an_error_or_is_survived, 0, 4);
	tcase_add_loop_test(c, test_every_failure_in_a_first_load_is_an_error, 0, 4);
	tcase_add_loop_test(c, test_every_failure_in_a_reload_keeps_the_working_version, 0, 2);
	tcase_add_loop_test(c, test_every_failure_in_a_probed_reload_keeps_the_working_version,
		0, 2);
	tcase_add_loop_test(c, test_every_failure_in_a_readmit_keeps_the_working_version, 0, 2);
	tcase_add_loop_test(c, test_every_failure_in_taking_locks_is_an_error_and_leaks_nothing,
		0, 2);
	tcase_add_loop_test(c, test_every_failure_in_the_watcher_keeps_the_working_version, 0, 4);
	tcase_add_loop_test(c, test_every_failure_in_status_and_close_is_survived, 0, 2);
	tcase_add_loop_test(c, test_every_failure_in_a_process_first_dispatch_is_survived, 0, 2);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	return run_suite(faults_suite(), CK_NORMAL);
}
