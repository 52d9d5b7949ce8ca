/* SPDX-License-Identifier: MIT */
/* util.h - helpers shared by the Check suites. */
#ifndef TESTS_UTIL_H
#define TESTS_UTIL_H

#include <check.h>
#include <hotmod.h>
#include <limits.h>
#include <stdbool.h>

#include "fixture.h"

/* A fresh root directory (mode 0755) under $TMPDIR; removed by rmroot. */
char *mkroot(void);
void rmroot(char *root);
/* The built fixture "probe_v1" -> ".../tests/fixtures/.libs/probe_v1.so". */
const char *fixture(const char *name);
/* Run a real command (argv[0] looked up in PATH); returns its exit status. */
int run(const char *const argv[]);
/* Put fixture name at root/rel with cp, mv (from a copy in root) or install. */
void deploy_cp(const char *name, const char *root, const char *rel);
void deploy_mv(const char *name, const char *root, const char *rel);
void deploy_install(const char *name, const char *root, const char *rel);
/* A path under root; static buffer per call site is the caller's. */
char *at(const char *root, const char *rel);
/*
 * How a test opens a loader on root:
 *	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
 * Members left out take the values here, not hm_options_init()'s: stat
 * mode (no watcher thread, so a change is seen only when the loader looks),
 * a missing file gone at once, the test log (logged(), wait_logged()).
 * LIB_DEFAULT in interval_ms or removal_delay_ms keeps the library's.
 */
struct loader_opts {
	struct fx_app *app;     /* hm_options.app; its loader member is set */
	int interval_ms;        /* check_interval_ms: 0 is HM_CHECK_ALWAYS */
	int watch;              /* 0: HM_WATCH_STAT (HM_WATCH_AUTO cannot be asked) */
	int removal_delay_ms;   /* 0: a missing file is gone at once */
	unsigned trust;         /* HM_TRUST_* */
	unsigned flags;         /* HM_OPEN_* */
	size_t max_module_size; /* 0: the library's */
	hm_log_fn log;          /* NULL: the test log */
	void *log_arg;
	bool quiet;             /* no log at all (log is ignored) */
	const char *request_kind; /* hm_options.request_kind; NULL: any */
	int (*admit)(void *, struct hm_admission *); /* hm_options.admit */
	void *admit_arg;
};
#define LIB_DEFAULT INT_MIN
/* hm_open() must succeed. */
hm_loader *open_loader_with(const char *root, const struct loader_opts *lo);
#define open_loader(root, ...) open_loader_with((root), &(const struct loader_opts){__VA_ARGS__})
/* The options open_loader() passes, for a test that calls hm_open() itself. */
void loader_options(struct hm_options *o, const char *root, const struct loader_opts *lo);
/* probe_v1 deployed as root/probe.so and served (version 1, one init) at
 * "probe" by a new loader (open_loader, HM_CHECK_NEVER). */
hm_loader *serve_v1(const char *root, struct fx_app *app);
/* hm_close(l, -1) must succeed; with app, every init got its fini. */
void close_loader(hm_loader *l, struct fx_app *app);
/* A fresh directory outside root with a valid module, probe_v2, at
 * probe.so: what a wrongly followed link would load (version 2, an init). */
char *outside_module(void);
/* Descriptors open in this process (to see that none are left behind). */
int count_fds(void);
/* Lines logged by loaders opened with open_loader, for assertions. */
int logged(const char *needle);
/* first was logged, and then, later, then (other lines may come between). */
int logged_in_order(const char *first, const char *then);
/* Wait until a loader logged a line containing needle; false after a
 * generous bound (the test then fails instead of hanging). */
bool wait_logged(const char *needle);
/* The same, for a line logged at HM_LOG_ERROR. */
bool wait_logged_error(const char *needle);
/* Was anything logged at HM_LOG_ERROR (and print it if so)? */
bool logged_any_error(void);
void log_reset(void);
/* The logger open_loader() installs, for loaders opened by hand. */
hm_log_fn test_log_fn(void);

/*
 * A gate: threads meet on a counter under a mutex.  gate_wait() gives up
 * after a generous bound and returns false, so that a test fails instead
 * of hanging.
 */
#include <pthread.h>
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int value;
};
#define GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}
void gate_add(struct gate *g, int n);
bool gate_wait(struct gate *g, int n); /* until value >= n */

/* Run every test of s, print as mode says; EXIT_SUCCESS if none failed. */
int run_suite(Suite *s, enum print_output mode);

#endif
