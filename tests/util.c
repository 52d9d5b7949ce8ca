/* SPDX-License-Identifier: MIT */
/* util.c - helpers shared by the Check suites. */
#define _GNU_SOURCE 1
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char *mkroot(void)
{
	const char *tmp = getenv("TMPDIR");
	char *root;

	ck_assert(asprintf(&root, "%s/hotmod-test-XXXXXX", tmp && *tmp ? tmp : "/tmp") > 0);
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_int_eq(chmod(root, 0755), 0);
	return root;
}

void rmroot(char *root)
{
	const char *argv[] = {"rm", "-rf", root, NULL};
	ck_assert_int_eq(run(argv), 0);
	free(root);
}

const char *fixture(const char *name)
{
	static __thread char buf[PATH_MAX];

	snprintf(buf, sizeof buf, "%s/%s.so", FIXTURES, name);
	ck_assert_msg(access(buf, R_OK) == 0, "fixture %s not built", buf);
	return buf;
}

int run(const char *const argv[])
{
	pid_t pid;
	int status;

	ck_assert_int_eq(posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv,
				 environ), 0);
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *at(const char *root, const char *rel)
{
	char *p;
	ck_assert(asprintf(&p, "%s/%s", root, rel) > 0);
	return p;
}

static void mkparents(const char *root, const char *rel)
{
	const char *slash = strrchr(rel, '/');
	char *dir;

	if (!slash)
		return;
	ck_assert(asprintf(&dir, "%s/%.*s", root, (int)(slash - rel), rel) > 0);
	const char *argv[] = {"mkdir", "-p", "-m", "755", dir, NULL};
	ck_assert_int_eq(run(argv), 0);
	free(dir);
}

void deploy_cp(const char *name, const char *root, const char *rel)
{
	char *dst = at(root, rel);
	mkparents(root, rel);
	const char *argv[] = {"cp", fixture(name), dst, NULL};
	ck_assert_int_eq(run(argv), 0);
	ck_assert_int_eq(chmod(dst, 0644), 0);
	free(dst);
}

void deploy_mv(const char *name, const char *root, const char *rel)
{
	char *dst = at(root, rel), *tmp;
	mkparents(root, rel);
	ck_assert(asprintf(&tmp, "%s/.tmp-%s-%d", root, name, (int)getpid()) > 0);
	const char *cp[] = {"cp", fixture(name), tmp, NULL};
	ck_assert_int_eq(run(cp), 0);
	ck_assert_int_eq(chmod(tmp, 0644), 0);
	const char *mv[] = {"mv", "-f", tmp, dst, NULL};
	ck_assert_int_eq(run(mv), 0);
	free(tmp);
	free(dst);
}

void deploy_install(const char *name, const char *root, const char *rel)
{
	char *dst = at(root, rel);
	mkparents(root, rel);
	const char *argv[] = {"install", "-m", "644", fixture(name), dst, NULL};
	ck_assert_int_eq(run(argv), 0);
	free(dst);
}

void close_loader(hm_loader *l, struct fx_app *app)
{
	ck_assert_msg(hm_close(l, -1) == 0, "hm_close: %s", hm_errmsg());
	if (app)
		ck_assert_int_eq(app->finis, app->inits);
}

char *outside_module(void)
{
	char *elsewhere = mkroot();

	deploy_cp("probe_v2", elsewhere, "probe.so");
	return elsewhere;
}

int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* opendir's own */
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static char log_buf[1 << 16], err_buf[1 << 14];
static size_t log_len, err_len;

static void test_log(void *arg, int level, const char *msg)
{
	(void)arg;
	pthread_mutex_lock(&log_mu);
	int n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%s\n", msg);
	if (n > 0 && (size_t)n < sizeof log_buf - log_len)
		log_len += (size_t)n;
	if (level == HM_LOG_ERROR) {
		n = snprintf(err_buf + err_len, sizeof err_buf - err_len, "%s\n", msg);
		if (n > 0 && (size_t)n < sizeof err_buf - err_len)
			err_len += (size_t)n;
	}
	pthread_cond_broadcast(&log_cv);
	pthread_mutex_unlock(&log_mu);
}

int logged(const char *needle)
{
	pthread_mutex_lock(&log_mu);
	int found = strstr(log_buf, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

int logged_in_order(const char *first, const char *then)
{
	pthread_mutex_lock(&log_mu);
	const char *a = strstr(log_buf, first);
	int found = a && strstr(a + strlen(first), then) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

static bool wait_in(const char *buf, const char *needle)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&log_mu);
	while (!strstr(buf, needle) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&log_cv, &log_mu, &deadline);
	bool found = strstr(buf, needle) != NULL;
	if (!found) /* say what was logged instead, for whoever reads the failure */
		fprintf(stderr, "waited for \"%s\"; the log has:\n%s", needle, log_buf);
	pthread_mutex_unlock(&log_mu);
	return found;
}

bool wait_logged(const char *needle)
{
	return wait_in(log_buf, needle);
}

bool logged_any_error(void)
{
	pthread_mutex_lock(&log_mu);
	bool any = err_len > 0;
	if (any)
		fprintf(stderr, "errors logged:\n%s", err_buf);
	pthread_mutex_unlock(&log_mu);
	return any;
}

bool wait_logged_error(const char *needle)
{
	return wait_in(err_buf, needle);
}

hm_log_fn test_log_fn(void)
{
	return test_log;
}

void log_reset(void)
{
	pthread_mutex_lock(&log_mu);
	log_len = err_len = 0;
	log_buf[0] = err_buf[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

void loader_options(struct hm_options *o, const char *root, const struct loader_opts *lo)
{
	hm_options_init(o);
	o->root = root;
	o->app = lo->app;
	o->log = lo->quiet ? NULL : lo->log ? lo->log : test_log;
	o->log_arg = lo->quiet ? NULL : lo->log_arg;
	if (lo->interval_ms != LIB_DEFAULT)
		o->check_interval_ms = lo->interval_ms;
	/* Deterministic: changes are seen only by stat checks or hm_refresh(),
	 * and a missing file is gone at once.  check_reload.c tests watching. */
	o->watch = lo->watch ? lo->watch : HM_WATCH_STAT;
	if (lo->removal_delay_ms != LIB_DEFAULT)
		o->removal_delay_ms = lo->removal_delay_ms;
	o->trust = lo->trust;
	o->flags = lo->flags;
	if (lo->max_module_size)
		o->max_module_size = lo->max_module_size;
	o->request_kind = lo->request_kind;
	o->admit = lo->admit;
	o->admit_arg = lo->admit_arg;
}

hm_loader *open_loader_with(const char *root, const struct loader_opts *lo)
{
	struct hm_options o;
	hm_loader *l = NULL;

	loader_options(&o, root, lo);
	ck_assert_msg(hm_open(&l, &o) == 0, "hm_open: %s", hm_errmsg());
	if (lo->app)
		lo->app->loader = l;
	return l;
}

hm_loader *serve_v1(const char *root, struct fx_app *app)
{
	struct fx_req req = {0};

	deploy_cp("probe_v1", root, "probe.so");
	hm_loader *l = open_loader(root, .app = app, .interval_ms = HM_CHECK_NEVER);
	int rc = hm_dispatch(l, "probe", &req);
	ck_assert_msg(rc == 1, "dispatch probe returned %d (%s), not 1", rc,
		rc < 0 ? hm_errmsg() : "");
	ck_assert_int_eq(req.handled_by, 1);
	ck_assert_int_eq(app->inits, 1);
	return l;
}

void gate_add(struct gate *g, int n)
{
	pthread_mutex_lock(&g->mu);
	g->value += n;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

bool gate_wait(struct gate *g, int n)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&g->mu);
	while (g->value < n && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
	bool ok = g->value >= n;
	pthread_mutex_unlock(&g->mu);
	return ok;
}

int run_suite(Suite *s, enum print_output mode)
{
	SRunner *sr = srunner_create(s);

	srunner_run_all(sr, mode);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
