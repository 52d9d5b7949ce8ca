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
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hm__fault_arm(long n);
long hm__fault_fired(void);

#define WALK_MAX 5000

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

static hm_loader *open_plain(int watch, unsigned flags)
{
	struct hm_options o;
	hm_loader *l = NULL;

	hm_options_init(&o);
	o.root = root;
	o.app = &app;
	o.watch = watch;
	o.flags = flags;
	o.check_interval_ms = HM_CHECK_NEVER;
	ck_assert_msg(hm_open(&l, &o) == 0, "hm_open: %s", hm_errmsg());
	app.loader = l;
	return l;
}

/* The module answers: its version, after recovering a first load. */
static int serves(hm_loader *l)
{
	struct fx_req req = {0};
	int rc = hm_dispatch(l, "m", &req);

	if (rc < 0) { /* a first load that failed may be remembered: retry it */
		ck_assert_int_ge(hm_refresh(l, "m"), 0);
		rc = hm_dispatch(l, "m", &req);
	}
	ck_assert_msg(rc == 1 || rc == 2, "dispatch: %d %s", rc, hm_errmsg());
	return rc;
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
	fprintf(stderr, "%s: %ld fallible calls failed one by one\n", tcase_name(), n - 2);
}

static void close_clean(hm_loader *l)
{
	ck_assert_int_eq(hm_close(l, -1), 0);
	ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
	memset(&app, 0, sizeof app);
}

START_TEST(test_every_failure_in_open_is_an_error_or_is_survived)
{
	long n, fired = 1;

	for (n = 1; fired && n < WALK_MAX; n++) {
		struct hm_options o;
		hm_loader *l = NULL;

		hm_options_init(&o);
		o.root = root;
		o.app = &app;
		o.watch = HM_WATCH_INOTIFY;
		o.flags = HM_OPEN_PRELOAD;
		hm__fault_arm(n);
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

START_TEST(test_every_failure_in_a_first_load_is_an_error)
{
	long n, fired = 1;

	for (n = 1; fired && n < WALK_MAX; n++) {
		hm_loader *l = open_plain(HM_WATCH_STAT, 0);
		struct fx_req req = {0};

		hm__fault_arm(n);
		int rc = hm_dispatch(l, "m", &req);
		fired = hm__fault_fired();
		hm__fault_arm(0);
		if (rc != 1)
			failed_with_reason(rc);
		ck_assert_int_eq(serves(l), 1);
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

		hm__fault_arm(n);
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
	walk_reload(0);
}
END_TEST

/* The same with HM_OPEN_PROBE: the probe's calls fail too (its pipe, its
 * process, reading its output), as system errors, never as a crash. */
START_TEST(test_every_failure_in_a_probed_reload_keeps_the_working_version)
{
	walk_reload(HM_OPEN_PROBE);
}
END_TEST

START_TEST(test_every_failure_in_the_watcher_keeps_the_working_version)
{
	long n, fired = 1;

	for (n = 1; fired && n < WALK_MAX; n++) {
		deploy_mv("probe_v1", root, "m.so");
		hm_loader *l = open_plain(HM_WATCH_INOTIFY, HM_OPEN_NO_THREAD);
		ck_assert_int_eq(serves(l), 1);
		hm_watch_process(l); /* what opening and loading stirred up */
		deploy_mv("probe_v2", root, "m.so");

		hm__fault_arm(n);
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
	}
	walked(n);
}
END_TEST

START_TEST(test_every_failure_in_status_and_close_is_survived)
{
	long n, fired = 1;

	for (n = 1; fired && n < WALK_MAX; n++) {
		hm_loader *l = open_plain(HM_WATCH_INOTIFY, 0);
		struct hm_status *st = NULL;

		ck_assert_int_eq(serves(l), 1);
		hm__fault_arm(n);
		int rc = hm_status_get(l, &st);
		long fired_status = hm__fault_fired();
		int crc = fired_status ? 0 : hm_close(l, -1);
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
		} else {
			ck_assert_int_eq(crc, 0); /* close cannot fail: it only frees */
			ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
			memset(&app, 0, sizeof app);
		}
	}
	walked(n);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *c = tcase_create("walk");

	tcase_add_checked_fixture(c, setup, teardown);
	tcase_set_timeout(c, 600);
	tcase_add_test(c, test_every_failure_in_open_is_an_error_or_is_survived);
	tcase_add_test(c, test_every_failure_in_a_first_load_is_an_error);
	tcase_add_test(c, test_every_failure_in_a_reload_keeps_the_working_version);
	tcase_add_test(c, test_every_failure_in_a_probed_reload_keeps_the_working_version);
	tcase_add_test(c, test_every_failure_in_the_watcher_keeps_the_working_version);
	tcase_add_test(c, test_every_failure_in_status_and_close_is_survived);
	suite_add_tcase(s, c);
	return s;
}

int main(void)
{
	return run_suite(faults_suite(), CK_NORMAL);
}
