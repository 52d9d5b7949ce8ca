/* SPDX-License-Identifier: MIT */
/*
 * check_reload.c - hot reload with real tools writing into a watched
 * directory while other threads dispatch requests.
 *
 * Every writer scenario checks the same four things: which version serves
 * new requests afterwards; that a request in flight across the reload
 * finished on the version it started on; that no request failed or saw a
 * broken module; that every old version was finalised exactly once.
 * Waiting is on conditions (a log line, a gate), never on time.
 */
#define _GNU_SOURCE 1
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *root;
static struct fx_app app;
static hm_loader *l;
static struct gate parked = GATE_INIT;
static struct gate unpark = GATE_INIT;

static void setup(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	log_reset();
}

static void teardown(void)
{
	if (l)
		ck_assert_int_eq(hm_close(l, -1), 0);
	l = NULL;
	/* every version finalised exactly once */
	ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
	rmroot(root);
}

/* Watching root with inotify, with the library's interval and delay. */
static hm_loader *open_watching(unsigned flags)
{
	return open_loader(root, .app = &app, .watch = HM_WATCH_INOTIFY,
		.interval_ms = LIB_DEFAULT, .removal_delay_ms = LIB_DEFAULT, .flags = flags);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;

	va_start(ap, fmt);
	ck_assert(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	const char *argv[] = {"sh", "-c", cmd, NULL};
	ck_assert_msg(run(argv) == 0, "failed: %s", cmd);
	free(cmd);
}

/* ---- background traffic and a request parked across the reload ---- */

#define TRAFFIC 2
static pthread_t traffic[TRAFFIC];
static atomic_bool traffic_stop;
static atomic_long traffic_done, traffic_failed, traffic_notfound;
static const char *traffic_path;

static void *traffic_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&traffic_stop)) {
		struct fx_req req = {0};
		int rc = hm_dispatch(l, traffic_path, &req);
		/* No version at all, and its file missing or still being
		 * written: "not there (yet)".  Only while a module is deleted. */
		if (rc == HM_ENOENT || rc == HM_ECHANGED || rc == HM_ENOTELF)
			atomic_fetch_add(&traffic_notfound, 1);
		else if (rc < 1 || req.handled_by != rc)
			atomic_fetch_add(&traffic_failed, 1); /* an error or a broken module */
		atomic_fetch_add(&traffic_done, 1);
	}
	return NULL;
}

static void traffic_start(const char *path)
{
	traffic_path = path;
	atomic_store(&traffic_stop, false);
	atomic_store(&traffic_done, 0);
	atomic_store(&traffic_failed, 0);
	atomic_store(&traffic_notfound, 0);
	for (int i = 0; i < TRAFFIC; i++)
		pthread_create(&traffic[i], NULL, traffic_thread, NULL);
}

static void traffic_stop_and_check(bool notfound_allowed)
{
	atomic_store(&traffic_stop, true);
	for (int i = 0; i < TRAFFIC; i++)
		pthread_join(traffic[i], NULL);
	ck_assert_int_gt(atomic_load(&traffic_done), 0);
	ck_assert_int_eq(atomic_load(&traffic_failed), 0);
	if (!notfound_allowed)
		ck_assert_int_eq(atomic_load(&traffic_notfound), 0);
}

static void park_here(struct fx_req *req, hm_ctx *ctx)
{
	(void)req;
	(void)ctx;
	gate_add(&parked, 1);
	ck_assert(gate_wait(&unpark, 1));
}

static struct fx_req parked_req;
static pthread_t parked_thread;

static void *parked_main(void *arg)
{
	return (void *)(long)hm_dispatch(l, arg, &parked_req);
}

static void park(const char *path)
{
	memset(&parked_req, 0, sizeof parked_req);
	parked_req.in_handle = park_here;
	parked.value = unpark.value = 0;
	pthread_create(&parked_thread, NULL, parked_main, (void *)path);
	ck_assert(gate_wait(&parked, 1));
}

/* Release the parked request: it must end on the version it started on. */
static void unpark_and_check(int want_rc, uint64_t want_version)
{
	void *rc;

	gate_add(&unpark, 1);
	pthread_join(parked_thread, &rc);
	ck_assert_int_eq((long)rc, want_rc);
	ck_assert_uint_eq(parked_req.version, want_version);
	ck_assert_int_eq(parked_req.handled_by, want_rc);
}

static int serve(const char *path, uint64_t *version)
{
	struct fx_req req = {0};
	int rc = hm_dispatch(l, path, &req);
	if (version)
		*version = req.version;
	return rc;
}

/*
 * The common scenario: probe v1 serves m; traffic runs and one request is
 * parked in v1's handler; change() writes; then version 2 must serve new
 * requests, with content want (1 or 2: FX_VERSION of the new file).
 */
static void scenario(void (*change)(void), int want, bool broken_on_the_way)
{
	uint64_t version;
	struct hm_status *st;

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	traffic_start("m");
	park("m");
	change();
	ck_assert_msg(wait_logged("m.so version 2 loaded"), "v2 never loaded");
	ck_assert_int_eq(serve("m", &version), want);
	ck_assert_uint_eq(version, 2);
	unpark_and_check(1, 1);
	traffic_stop_and_check(false);
	if (!broken_on_the_way) {
		/* whatever the tool, no half-written file was looked at */
		ck_assert(!logged_any_error());
		ck_assert_int_eq(hm_status_get(l, &st), 0);
		ck_assert_uint_eq(st->modules[0].failures, 0);
		hm_status_free(st);
	}
	ck_assert_int_eq(hm_close(l, -1), 0);
	l = NULL;
	ck_assert_int_eq(atomic_load(&app.inits), 2);
	ck_assert_int_eq(atomic_load(&app.finis), 2);
}

static void write_cp(void) { deploy_cp("probe_v2", root, "m.so"); }
static void write_mv(void) { deploy_mv("probe_v2", root, "m.so"); }
static void write_install(void) { deploy_install("probe_v2", root, "m.so"); }

static void write_ln_sf(void)
{
	deploy_cp("probe_v2", root, "release-2.so");
	sh("cd '%s' && ln -sf release-2.so m.so", root);
}

static void write_compiler(void)
{
	sh("%s -shared -fPIC -DFX_VERSION=2 -I'%s/loader' -I'%s/tests/fixtures' "
	   "-o '%s/m.so' '%s/tests/fixtures/probe.c'",
		TEST_CC, TOP_SRCDIR, TOP_SRCDIR, root, TOP_SRCDIR);
}

START_TEST(test_cp_over_the_loaded_file_is_picked_up)
{
	scenario(write_cp, 2, false);
}
END_TEST

START_TEST(test_mv_into_place_is_picked_up)
{
	scenario(write_mv, 2, false);
}
END_TEST

START_TEST(test_install_is_picked_up_without_a_not_found)
{
	scenario(write_install, 2, false);
}
END_TEST

START_TEST(test_ln_sf_to_a_new_file_is_picked_up)
{
	scenario(write_ln_sf, 2, false);
}
END_TEST

START_TEST(test_compiler_writing_into_the_directory_is_picked_up)
{
	scenario(write_compiler, 2, false);
}
END_TEST

static void write_truncated_then_complete(void)
{
	/* an incomplete file, as a slow copy leaves it for a moment */
	sh("head -c 3000 '%s' > '%s/m.so'", fixture("probe_v2"), root);
	ck_assert(wait_logged("m.so: truncated"));
	ck_assert(wait_logged("(version 1 keeps serving)"));
	ck_assert_int_eq(serve("m", NULL), 1);
	deploy_cp("probe_v2", root, "m.so");
}

START_TEST(test_truncated_file_then_complete_one)
{
	scenario(write_truncated_then_complete, 2, true);
}
END_TEST

static void write_wrong_abi_then_good(void)
{
	struct hm_status *st;

	deploy_mv("badabi", root, "m.so");
	ck_assert(wait_logged("m.so: built for module ABI 999"));
	ck_assert_int_eq(serve("m", NULL), 1);
	/* status tells the operator what failed */
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_eq(st->nmodules, 1);
	ck_assert_str_eq(st->modules[0].path, "m.so");
	ck_assert_uint_eq(st->modules[0].current, 1);
	ck_assert_uint_eq(st->modules[0].failures, 1);
	ck_assert_int_eq(st->modules[0].last_error, HM_EABI);
	ck_assert_ptr_nonnull(strstr(st->modules[0].last_error_msg, "ABI 999"));
	ck_assert_int_gt(st->modules[0].last_error_time, 0);
	ck_assert_str_eq(st->watch, "inotify");
	hm_status_free(st);
	deploy_mv("probe_v2", root, "m.so");
}

START_TEST(test_wrong_abi_never_replaces_the_working_version)
{
	scenario(write_wrong_abi_then_good, 2, true);
}
END_TEST

START_TEST(test_touch_and_chmod_load_nothing)
{
	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	sh("touch '%s/m.so' && chmod 600 '%s/m.so' && chmod 644 '%s/m.so'", root, root, root);
	/* a later real change proves the events above were processed */
	deploy_cp("probe_v1", root, "other.so");
	deploy_mv("probe_v2", root, "m.so");
	ck_assert(wait_logged("m.so version 2 loaded"));
	ck_assert(logged("m.so: content unchanged"));
	ck_assert_int_eq(atomic_load(&app.inits), 2);
}
END_TEST

/*
 * A request for a module with no version must not load its file while a
 * writer still has it open: everything written so far may already hold
 * every loadable segment (the section headers come last), so the copy
 * would load, and be replaced when the write ends.  The request gets
 * HM_ECHANGED; once the writer closes, the file serves as version 1.
 */
START_TEST(test_a_file_still_being_written_is_not_loaded_by_a_request)
{
	char *path = at(root, "m.so");
	uint64_t version = 0;
	char buf[65536];
	ssize_t n;

	deploy_cp("probe_v1", root, "n.so");
	l = open_watching(HM_OPEN_PRELOAD);
	int in = open(fixture("probe_v1"), O_RDONLY);
	int out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n); /* all of it, still open */
	close(in);
	/* A later change proves the watcher has read the events above. */
	deploy_mv("probe_v2", root, "n.so");
	ck_assert(wait_logged("n.so version 2 loaded"));
	ck_assert_int_eq(serve("m", NULL), HM_ECHANGED);
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "being written"));

	ck_assert_int_eq(close(out), 0);
	ck_assert(wait_logged("m.so version 1 loaded"));
	ck_assert_int_eq(serve("m", &version), 1);
	ck_assert_uint_eq(version, 1);
	free(path);
}
END_TEST

/*
 * A writer that stays quiet for longer than removal_delay_ms without
 * closing the file - a slow linker on a busy machine - is not judged: an
 * incomplete file is still being written, not broken.  Each shape opens
 * the file, leaves it incomplete, waits until the watcher has looked at it
 * (its log says so) and then for twice the delay more, by the clock the
 * loader uses, then writes the rest and closes.  No error may be logged,
 * and the complete file loads.
 */
enum quiet_shape {
	QUIET_EMPTY,       /* created or truncated, nothing written yet */
	QUIET_HALF_HEADER, /* part of the ELF header */
	QUIET_ZEROS,       /* extended to its size first (a linker that maps it) */
	QUIET_PREFIX,      /* the headers, the segments not yet */
	QUIET_SHAPES
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write fixture name into rel as a quiet writer of the given shape would. */
static void write_quietly(const char *name, const char *rel, enum quiet_shape shape,
	int delay_ms, const char *new_module)
{
	char *path = at(root, rel), line[128];
	char buf[1 << 16];
	int in = open(fixture(name), O_RDONLY);
	struct stat st;
	ssize_t n;

	ck_assert(in >= 0 && fstat(in, &st) == 0);
	ck_assert_int_le(st.st_size, (off_t)sizeof buf);
	ck_assert_int_eq(read(in, buf, sizeof buf), st.st_size);
	close(in);
	log_reset();
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert(out >= 0);
	switch (shape) {
	case QUIET_EMPTY:
		break;
	case QUIET_HALF_HEADER:
		ck_assert_int_eq(write(out, buf, 20), 20);
		break;
	case QUIET_ZEROS:
		ck_assert_int_eq(ftruncate(out, st.st_size), 0);
		break;
	case QUIET_PREFIX:
		ck_assert_int_eq(write(out, buf, 3000), 3000);
		break;
	default:
		ck_abort();
	}
	/* The watcher looked, after the delay, and found it incomplete. */
	snprintf(line, sizeof line, "%s: still being written", rel);
	ck_assert_msg(wait_logged(line), "shape %d: not looked at, or judged", shape);
	if (new_module) { /* a request does not load it either */
		ck_assert_int_eq(serve(new_module, NULL), HM_ECHANGED);
		ck_assert_ptr_nonnull(strstr(hm_errmsg(), "being written"));
	}
	/* Quiet for longer still: a margin, measured on the loader's clock. */
	for (int64_t end = mono_ms() + 2 * delay_ms; mono_ms() < end;) {
		struct timespec pause = {0, 10 * 1000000};
		nanosleep(&pause, NULL);
	}
	ck_assert_msg(!logged_any_error(), "shape %d: an error for a file being written",
		shape);
	n = pwrite(out, buf, (size_t)st.st_size, 0);
	ck_assert_int_eq(n, st.st_size);
	ck_assert_int_eq(close(out), 0);
	free(path);
}

START_TEST(test_a_writer_quiet_for_longer_than_the_removal_delay_is_not_judged)
{
	enum { DELAY_MS = 100 };
	char line[64];
	uint64_t version;
	struct hm_status *st;

	deploy_cp("probe_v1", root, "m.so");
	l = open_loader(root, .app = &app, .watch = HM_WATCH_INOTIFY,
		.interval_ms = LIB_DEFAULT, .removal_delay_ms = DELAY_MS);
	ck_assert_int_eq(serve("m", NULL), 1);
	for (int shape = 0; shape < QUIET_SHAPES; shape++) {
		int want = shape % 2 ? 1 : 2; /* each version differs from the last */
		write_quietly(want == 2 ? "probe_v2" : "probe_v1", "m.so", shape, DELAY_MS,
			NULL);
		snprintf(line, sizeof line, "m.so version %d loaded", shape + 2);
		ck_assert_msg(wait_logged(line), "shape %d: never loaded", shape);
		ck_assert_int_eq(serve("m", &version), want);
		ck_assert_uint_eq(version, (uint64_t)shape + 2);
		ck_assert_msg(!logged_any_error(), "shape %d", shape);
	}
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_eq(st->modules[0].failures, 0);
	hm_status_free(st);
}
END_TEST

/* The same for a module that has no version yet: a request meanwhile is
 * told that it is being written, and loads it once its writer closed it. */
START_TEST(test_a_new_module_whose_writer_is_quiet_loads_when_it_is_closed)
{
	enum { DELAY_MS = 100 };
	char rel[16], req[16], line[64];

	deploy_cp("probe_v1", root, "b.so");
	l = open_loader(root, .app = &app, .watch = HM_WATCH_INOTIFY,
		.interval_ms = LIB_DEFAULT, .removal_delay_ms = DELAY_MS);
	ck_assert_int_eq(serve("b", NULL), 1);
	for (int shape = 0; shape < QUIET_SHAPES; shape++) {
		snprintf(req, sizeof req, "n%d", shape);
		snprintf(rel, sizeof rel, "n%d.so", shape);
		write_quietly("probe_v2", rel, shape, DELAY_MS, req);
		/* A later change proves the watcher has read the close. */
		deploy_mv(shape % 2 ? "probe_v1" : "probe_v2", root, "b.so");
		snprintf(line, sizeof line, "b.so version %d loaded", shape + 2);
		ck_assert(wait_logged(line));
		ck_assert_msg(serve(req, NULL) == 2, "shape %d: %s", shape, hm_errmsg());
		ck_assert_msg(!logged_any_error(), "shape %d", shape);
	}
}
END_TEST

START_TEST(test_deleted_module_stops_serving_and_returns_when_readded)
{
	char *path = at(root, "m.so");
	uint64_t version;

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	traffic_start("m");
	park("m");
	ck_assert_int_eq(unlink(path), 0);
	ck_assert(wait_logged("m.so removed"));
	ck_assert_int_eq(serve("m", NULL), HM_ENOENT);
	unpark_and_check(1, 1); /* the running request finished on v1 */
	deploy_install("probe_v2", root, "m.so");
	ck_assert(wait_logged("m.so version 2 loaded"));
	ck_assert_int_eq(serve("m", &version), 2);
	ck_assert_uint_eq(version, 2);
	traffic_stop_and_check(true);
	free(path);
}
END_TEST

START_TEST(test_new_subdirectory_with_modules_is_watched_and_loaded)
{
	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(HM_OPEN_PRELOAD);
	ck_assert_int_eq(atomic_load(&app.inits), 1); /* preloaded, no request */
	/* a directory created in place, then files in it */
	deploy_cp("probe_v1", root, "a/b/m.so");
	ck_assert(wait_logged("a/b/m.so version 1 loaded"));
	/* a directory made elsewhere with its files, then moved in */
	char *tmp = at(root, ".staging");
	sh("mkdir -m 755 '%s' && cp '%s' '%s/x.so' && chmod 644 '%s/x.so' && mv '%s' '%s/c'",
		tmp, fixture("probe_v2"), tmp, tmp, tmp, root);
	ck_assert(wait_logged("c/x.so version 1 loaded"));
	ck_assert_int_eq(serve("c/x", NULL), 2);
	/* and a change inside the new directory is seen too */
	deploy_mv("probe_v2", root, "a/b/m.so");
	ck_assert(wait_logged("a/b/m.so version 2 loaded"));
	ck_assert_int_eq(serve("a/b/m", NULL), 2);
	free(tmp);
}
END_TEST

START_TEST(test_new_global_serves_new_requests_while_old_pair_finishes)
{
	uint64_t version;
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("global_v1", root, "_global.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	traffic_start("m");
	park("m");
	ck_assert_uint_eq(parked_req.global_version, 1);
	deploy_install("global_v2", root, "_global.so"); /* delete, create, write */
	ck_assert(wait_logged("_global.so version 2 loaded"));
	ck_assert(wait_logged("m.so version 2 loaded")); /* re-initialised */
	ck_assert(!logged_any_error());
	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_uint_eq(req.global_version, 2);
	ck_assert_uint_eq(req.version, 2);
	unpark_and_check(1, 1);
	ck_assert_uint_eq(parked_req.global_version, 1); /* the old pair, to the end */
	traffic_stop_and_check(false);
	/* the old global is finalised after the old module bound to it (the
	 * watcher's late look at the installed file may log between them) */
	ck_assert(wait_logged("_global.so version 1 unloaded"));
	ck_assert(logged_in_order("m.so version 1 unloaded", "_global.so version 1 unloaded"));
	(void)version;
}
END_TEST

/* ---- release directories behind a link ------------------------------------ */

/* ROOT/.releases/N: its global and modules m, f0 ... f(n-1), all build N. */
static void release(int n, int modules)
{
	char rel[64];

	snprintf(rel, sizeof rel, ".releases/%d/_global.so", n);
	deploy_cp(n == 1 ? "global_v1" : "global_v2", root, rel);
	snprintf(rel, sizeof rel, ".releases/%d/m.so", n);
	deploy_cp(n == 1 ? "probe_v1" : "probe_v2", root, rel);
	for (int i = 0; i < modules; i++) {
		char *src, *dst;
		snprintf(rel, sizeof rel, ".releases/%d/f%d.so", n, i);
		src = at(root, rel);
		dst = at(root, rel);
		snprintf(strrchr(src, '/'), 8, "/m.so");
		ck_assert_int_eq(link(src, dst), 0); /* the same build, another name */
		free(dst);
		free(src);
	}
}

/* Point ROOT/app at release n as ln -sfn does: a new link renamed over. */
static void switch_to(int n)
{
	char target[32];
	char *tmp = at(root, "app.new"), *app_link = at(root, "app");

	snprintf(target, sizeof target, ".releases/%d", n);
	ck_assert_int_eq(symlink(target, tmp), 0);
	ck_assert_int_eq(rename(tmp, app_link), 0);
	free(app_link);
	free(tmp);
}

/* Dispatch path: the module's build, which its global's must equal; 0 for
 * a refusal that a deploy in progress may cause. */
static int served_pair(const char *path)
{
	struct fx_req req = {0};
	int rc = hm_dispatch(l, path, &req);

	if (rc == HM_ECHANGED)
		return 0;
	ck_assert_msg(rc >= 1, "%s: %s: %s", path, hm_err_name(rc), hm_errmsg());
	ck_assert_msg(req.handled_by == req.global_build,
		"%s: module build %d bound to the global of build %d", path, req.handled_by,
		req.global_build);
	return req.handled_by;
}

/*
 * With app -> .releases/N, a deploy switches the link to N+1 (no event: the
 * link is not a module file).  A module first loaded after that comes from
 * N+1, and so must its global, though the global loaded from N is still
 * current: a module and its global come from the same directory as it is
 * now.  (It used to be bound to N's global, in both modes, until a
 * rescan.)  A module loaded before keeps its own pair until it is looked at
 * again.
 */
static void check_release_switch(int watch)
{
	release(1, 1);
	release(2, 1);
	switch_to(1);
	l = open_loader(root, .app = &app, .watch = watch, .interval_ms = HM_CHECK_NEVER,
		.removal_delay_ms = LIB_DEFAULT);
	ck_assert_int_eq(served_pair("app/m"), 1);

	switch_to(2);
	ck_assert_int_eq(served_pair("app/f0"), 2);
	ck_assert_int_eq(served_pair("app/m"), 1); /* its pair, until looked at */
	ck_assert_int_eq(hm_rescan(l), 0);         /* SIGHUP */
	ck_assert_int_eq(served_pair("app/m"), 2);
	ck_assert_int_eq(served_pair("app/f0"), 2);
	ck_assert(!logged_any_error());
}

START_TEST(test_a_module_first_loaded_after_a_release_switch_binds_to_that_release_global)
{
	check_release_switch(HM_WATCH_INOTIFY);
}
END_TEST

START_TEST(test_in_stat_mode_too_a_module_loaded_after_a_release_switch_binds_to_its_global)
{
	check_release_switch(HM_WATCH_STAT);
}
END_TEST

#define ROUNDS 30
static atomic_int switch_round;
static atomic_bool pairs_stop;
static struct gate pairs_seen = GATE_INIT;

/* Traffic: app/m, and app/f<round>, first loaded after that round's
 * switch; every answer a pair of one build. */
static void *pair_traffic(void *arg)
{
	char path[32];

	(void)arg;
	while (!atomic_load(&pairs_stop)) {
		snprintf(path, sizeof path, "app/f%d", atomic_load(&switch_round));
		served_pair("app/m");
		served_pair(path);
		gate_add(&pairs_seen, 1);
	}
	return NULL;
}

/*
 * The link switched back and forth under traffic, a rescan (SIGHUP) after
 * every third switch: whatever is loaded when, each answer pairs a module
 * build with the global of the same build.
 */
START_TEST(test_release_switches_under_traffic_pair_each_module_with_its_own_global)
{
	pthread_t t[TRAFFIC];

	release(1, ROUNDS);
	release(2, ROUNDS);
	switch_to(1);
	l = open_watching(0);
	atomic_store(&switch_round, 0);
	atomic_store(&pairs_stop, false);
	pairs_seen.value = 0;
	for (int i = 0; i < TRAFFIC; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, pair_traffic, NULL), 0);
	for (int r = 1; r < ROUNDS; r++) {
		pthread_mutex_lock(&pairs_seen.mu);
		int seen = pairs_seen.value;
		pthread_mutex_unlock(&pairs_seen.mu);
		switch_to(r % 2 + 1);
		atomic_store(&switch_round, r);
		if (r % 3 == 0)
			ck_assert_int_eq(hm_rescan(l), 0);
		ck_assert(gate_wait(&pairs_seen, seen + 2 * TRAFFIC));
	}
	atomic_store(&pairs_stop, true);
	for (int i = 0; i < TRAFFIC; i++)
		pthread_join(t[i], NULL);
	ck_assert(!logged_any_error());
}
END_TEST

START_TEST(test_counter_survives_three_reloads_by_hand_over)
{
	struct fx_req req = {0};
	static const char *const next[] = {"handover_v2", "handover_v1", "handover_v2"};
	char line[64];

	deploy_cp("handover_v1", root, "count.so");
	l = open_watching(0);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(hm_dispatch(l, "count", &req), i);
	for (int r = 0; r < 3; r++) {
		deploy_mv(next[r], root, "count.so");
		snprintf(line, sizeof line, "count.so version %d loaded", r + 2);
		ck_assert(wait_logged(line));
		ck_assert_int_eq(hm_dispatch(l, "count", &req), 4 + r);
		ck_assert_int_eq(req.handled_by, r % 2 ? 1 : 2);
	}
	ck_assert(logged("state handed over"));
	ck_assert_int_eq(hm_close(l, -1), 0);
	l = NULL;
	ck_assert_int_eq(atomic_load(&app.state_frees), 1); /* freed once, at the end */
	ck_assert_int_eq(atomic_load(&app.finis), 4);
}
END_TEST

START_TEST(test_handed_over_state_outlives_the_old_versions_requests)
{
	struct fx_req req = {0};
	char *count = at(root, "count.so"), *m = at(root, "m.so");
	hm_module *v1;

	deploy_cp("handover_v1", root, "count.so");
	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(hm_dispatch(l, "count", &req), 1);
	ck_assert_int_eq(hm_get(l, "count", &v1), 0); /* an old request holds v1 */
	deploy_mv("handover_v2", root, "count.so");
	ck_assert(wait_logged("count.so version 2 loaded"));
	ck_assert_int_eq(unlink(count), 0); /* v2 goes away before v1 is done */
	ck_assert(wait_logged("count.so removed"));
	/* Barrier: the reaper finalises in order, so once a version retired
	 * after this point is unloaded, v2 would have been too. */
	ck_assert_int_eq(serve("m", NULL), 1);
	ck_assert_int_eq(unlink(m), 0);
	ck_assert(wait_logged("m.so version 1 unloaded"));
	ck_assert(!logged("count.so version 2 unloaded"));
	ck_assert_int_eq(atomic_load(&app.state_frees), 0);
	/* v1's request still uses the shared state */
	ck_assert_int_eq(hm_call(v1, &req), 2);
	hm_put(v1);
	ck_assert(wait_logged("count.so version 2 unloaded"));
	ck_assert_int_eq(atomic_load(&app.state_frees), 1);
	free(count);
	free(m);
}
END_TEST

START_TEST(test_queue_overflow_ends_in_a_rescan_that_finds_the_change)
{
	struct hm_status *st;
	char *junk = at(root, "junk"), *junk2 = at(root, "junk2");
	int max = 16384;
	FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");

	if (f) {
		ck_assert_int_eq(fscanf(f, "%d", &max), 1);
		fclose(f);
	}
	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(HM_OPEN_NO_THREAD);
	ck_assert_int_ge(hm_watch_fd(l), 0);
	ck_assert_int_eq(serve("m", NULL), 1);
	/* Flood the queue while nobody reads it: alternate two names, since
	 * inotify merges identical consecutive events. */
	close(open(junk, O_CREAT | O_WRONLY, 0644));
	close(open(junk2, O_CREAT | O_WRONLY, 0644));
	for (int i = 0; i <= max; i++)
		ck_assert_int_eq(utimensat(AT_FDCWD, i % 2 ? junk : junk2, NULL, 0), 0);
	deploy_mv("probe_v2", root, "m.so"); /* its event is lost */
	ck_assert_int_ge(hm_watch_process(l), 1);
	ck_assert_int_eq(serve("m", NULL), 2);
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_ge(st->rescans, 1);
	hm_status_free(st);
	free(junk);
	free(junk2);
}
END_TEST

START_TEST(test_embedder_loop_polls_the_fd_and_processes)
{
	struct pollfd pfd;

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(HM_OPEN_NO_THREAD);
	ck_assert_int_eq(serve("m", NULL), 1);
	ck_assert_int_eq(hm_watch_timeout(l), -1);
	deploy_mv("probe_v2", root, "m.so");
	pfd = (struct pollfd){.fd = hm_watch_fd(l), .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, 30000), 1);
	ck_assert_int_eq(serve("m", NULL), 1); /* nothing happens until processed */
	ck_assert_int_ge(hm_watch_process(l), 1);
	ck_assert_int_eq(serve("m", NULL), 2);
	/* a deletion asks to be processed again after the removal delay */
	char *path = at(root, "m.so");
	ck_assert_int_eq(unlink(path), 0);
	free(path);
	ck_assert_int_eq(poll(&pfd, 1, 30000), 1);
	hm_watch_process(l);
	int t = hm_watch_timeout(l);
	ck_assert_int_ge(t, 0);
	ck_assert_int_eq(serve("m", NULL), 2); /* still within the grace */
	while ((t = hm_watch_timeout(l)) >= 0) {
		poll(&pfd, 1, t);
		hm_watch_process(l);
	}
	ck_assert_int_eq(serve("m", NULL), HM_ENOENT);
}
END_TEST

START_TEST(test_preload_loads_everything_and_reports_broken_files)
{
	struct hm_status *st;

	deploy_cp("probe_v1", root, "a.so");
	deploy_cp("probe_v2", root, "d/b.so");
	deploy_cp("global_v1", root, "d/_global.so");
	deploy_cp("badabi", root, "broken.so");
	l = open_watching(HM_OPEN_PRELOAD);
	ck_assert_int_eq(atomic_load(&app.inits), 3); /* a, b and d's global */
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_eq(st->nmodules, 4);
	ck_assert_str_eq(st->modules[0].path, "a.so");
	ck_assert_str_eq(st->modules[1].path, "broken.so");
	ck_assert_int_eq(st->modules[1].last_error, HM_EABI);
	ck_assert_uint_eq(st->modules[1].failures, 1); /* tried once, not once per pass */
	ck_assert_uint_eq(st->modules[1].current, 0);
	ck_assert_str_eq(st->modules[2].path, "d/_global.so");
	ck_assert_int_eq(st->modules[2].global, 1);
	ck_assert_uint_eq(st->modules[3].current, 1);
	ck_assert_uint_eq(st->modules[3].nversions, 1);
	ck_assert_uint_eq(st->modules[3].versions[0].refs, 0);
	hm_status_free(st);
	ck_assert_int_eq(serve("d/b", NULL), 2);
	ck_assert_int_eq(atomic_load(&app.inits), 3); /* nothing loaded on request */
}
END_TEST

START_TEST(test_status_counts_references_in_flight)
{
	struct hm_status *st;
	hm_module *m;

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(hm_get(l, "m", &m), 0);
	deploy_mv("probe_v2", root, "m.so");
	ck_assert(wait_logged("m.so version 2 loaded"));
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_eq(st->modules[0].current, 2);
	ck_assert_uint_eq(st->modules[0].nversions, 2);
	ck_assert_uint_eq(st->modules[0].versions[0].version, 2);
	ck_assert_int_eq(st->modules[0].versions[0].current, 1);
	ck_assert_uint_eq(st->modules[0].versions[0].refs, 0);
	ck_assert_uint_eq(st->modules[0].versions[1].version, 1);
	ck_assert_uint_eq(st->modules[0].versions[1].refs, 1);
	ck_assert_uint_eq(st->modules[0].loads, 2);
	/* how long the last load took, phase by phase */
	const struct hm_module_status *ms = &st->modules[0];
	ck_assert_uint_gt(ms->load_dlopen_ns, 0);
	ck_assert_uint_gt(ms->load_total_ns, 0);
	ck_assert_uint_ge(ms->load_total_ns,
		ms->load_copy_ns + ms->load_dlopen_ns + ms->load_init_ns);
	ck_assert_int_gt(ms->load_started, 0);
	hm_status_free(st);
	hm_put(m);
}
END_TEST

START_TEST(test_a_child_after_fork_gets_efork)
{
	hm_module *m;
	pid_t pid;
	int status;

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int ok = hm_get(l, "m", &m) == HM_EFORK && hm_close(l, 0) == HM_EFORK &&
			 hm_watch_process(l) == HM_EFORK && strstr(hm_errmsg(), "fork");
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_eq(serve("m", NULL), 1); /* the parent's loader is unharmed */
}
END_TEST

START_TEST(test_a_lazy_loader_loads_nothing_at_open_not_even_globals)
{
	deploy_cp("probe_v1", root, "d/m.so");
	deploy_cp("global_v1", root, "d/_global.so");
	l = open_watching(0);
	ck_assert_int_eq(atomic_load(&app.inits), 0);
	ck_assert_int_eq(serve("d/m", NULL), 1);
	ck_assert_int_eq(atomic_load(&app.inits), 2); /* global, then module */
}
END_TEST

START_TEST(test_a_broken_hard_link_is_reported_as_an_error_not_only_at_debug)
{
	struct hm_status *st;
	char *text = at(root, ".broken");

	deploy_cp("probe_v1", root, "m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("m", NULL), 1);
	FILE *f = fopen(text, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 10; i++) /* longer than an ELF header */
		fputs("this is not a module\n", f);
	fclose(f);
	chmod(text, 0644);
	/* ln -f: unlink, then link: a DELETE and a CREATE, no event ends a write */
	sh("ln -f '%s' '%s/m.so'", text, root);
	ck_assert(wait_logged_error("m.so: not an ELF file (bad magic) (version 1 keeps serving)"));
	ck_assert_int_eq(serve("m", NULL), 1);
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_int_eq(st->modules[0].last_error, HM_ENOTELF);
	hm_status_free(st);
	free(text);
}
END_TEST

START_TEST(test_chmod_of_a_directory_is_no_reason_to_rescan)
{
	struct hm_status *st;

	deploy_cp("probe_v1", root, "d/m.so");
	l = open_watching(0);
	ck_assert_int_eq(serve("d/m", NULL), 1);
	sh("chmod 700 '%s/d' && chmod 755 '%s/d'", root, root);
	deploy_mv("probe_v2", root, "d/m.so"); /* processed after the chmods */
	ck_assert(wait_logged("d/m.so version 2 loaded"));
	ck_assert_int_eq(hm_status_get(l, &st), 0);
	ck_assert_uint_eq(st->rescans, 0);
	hm_status_free(st);
}
END_TEST

static Suite *reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *w = tcase_create("writers"), *o = tcase_create("other");

	tcase_add_checked_fixture(w, setup, teardown);
	tcase_add_test(w, test_cp_over_the_loaded_file_is_picked_up);
	tcase_add_test(w, test_mv_into_place_is_picked_up);
	tcase_add_test(w, test_install_is_picked_up_without_a_not_found);
	tcase_add_test(w, test_ln_sf_to_a_new_file_is_picked_up);
	tcase_add_test(w, test_compiler_writing_into_the_directory_is_picked_up);
	tcase_add_test(w, test_truncated_file_then_complete_one);
	tcase_add_test(w, test_wrong_abi_never_replaces_the_working_version);
	tcase_add_test(w, test_touch_and_chmod_load_nothing);
	tcase_add_test(w, test_deleted_module_stops_serving_and_returns_when_readded);
	tcase_add_test(w, test_a_file_still_being_written_is_not_loaded_by_a_request);
	tcase_add_test(w, test_a_writer_quiet_for_longer_than_the_removal_delay_is_not_judged);
	tcase_add_test(w, test_a_new_module_whose_writer_is_quiet_loads_when_it_is_closed);
	tcase_add_test(w, test_new_subdirectory_with_modules_is_watched_and_loaded);
	tcase_add_test(w, test_new_global_serves_new_requests_while_old_pair_finishes);
	tcase_add_test(w, test_a_module_first_loaded_after_a_release_switch_binds_to_that_release_global);
	tcase_add_test(w, test_in_stat_mode_too_a_module_loaded_after_a_release_switch_binds_to_its_global);
	tcase_add_test(w, test_release_switches_under_traffic_pair_each_module_with_its_own_global);
	suite_add_tcase(s, w);
	tcase_add_checked_fixture(o, setup, teardown);
	tcase_add_test(o, test_counter_survives_three_reloads_by_hand_over);
	tcase_add_test(o, test_handed_over_state_outlives_the_old_versions_requests);
	tcase_add_test(o, test_queue_overflow_ends_in_a_rescan_that_finds_the_change);
	tcase_add_test(o, test_embedder_loop_polls_the_fd_and_processes);
	tcase_add_test(o, test_preload_loads_everything_and_reports_broken_files);
	tcase_add_test(o, test_status_counts_references_in_flight);
	tcase_add_test(o, test_a_child_after_fork_gets_efork);
	tcase_add_test(o, test_a_lazy_loader_loads_nothing_at_open_not_even_globals);
	tcase_add_test(o, test_a_broken_hard_link_is_reported_as_an_error_not_only_at_debug);
	tcase_add_test(o, test_chmod_of_a_directory_is_no_reason_to_rescan);
	suite_add_tcase(s, o);
	return s;
}

int main(void)
{
	return run_suite(reload_suite(), CK_NORMAL);
}
