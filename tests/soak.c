/* SPDX-License-Identifier: MIT */
/*
 * soak.c - requests and reloads for a long while, then the figures.
 *
 * Request threads (2 per CPU) dispatch without pause across three modules
 * of one directory and its global module, while this thread (the reloader)
 * keeps replacing them with every writer: cp in place, mv, install,
 * ln -sf, delete and re-add, a truncated file, a wrong-ABI file, a module
 * whose init fails, the global module itself, two writes back to back, and
 * the global module written together with a module (a deploy script; also
 * while a deleted module is re-added).  The loader watches with inotify
 * and the default removal delay, as a server would.  After each change the
 * reloader waits (bounded) until the log says the new build serves and,
 * for the global, until every module is bound to its new version.
 *
 * Every hook of a request stamps the versions it ran on (tests/fixtures/
 * soak_mod.c); a request passes when its seven hooks ran in order on one
 * (module, global) pair, that pair is the one the module version was bound
 * to at its init, neither version was finalised yet, and it is not older
 * than what the reloader already saw loaded.  Requests of a module that is
 * deleted and not back yet may answer not-found (or, while its file is
 * being re-added, changed or not-ELF); any other error is a failure.
 *
 * Resources: descriptors, mappings and RSS are measured before the loader
 * is opened and after hm_close().  A first, short cycle (its own loader)
 * runs before that baseline, so that what glibc keeps for reuse (thread
 * stacks, malloc arenas, the dynamic linker's tables) is there already and
 * not counted as a leak; its requests are checked like the others.
 *
 * The log must show no error or warning but the refusals of the bad files
 * (and of half-copied files a request loaded while its module had no
 * version): a good deploy is never reported as a failure.
 *
 * Output: the figures, one line per check, and "N passed, N failed".
 * SOAK_SECONDS sets the duration (default 60).  Exit status 0 only if
 * every check passed.
 */
#define _GNU_SOURCE 1
#include "soak.h"

#include <dirent.h>
#include <errno.h>
#include <hotmod.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The sanitizers map and keep memory of their own: RSS and mappings say
 * nothing about the library there (their leak checker does). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

#define NMOD 3          /* modules m0 m1 m2, beside _global.so */
#define NBUILDS 3       /* soak_mod_v1..3, soak_global_v1..3 */
#define WAIT_S 10       /* any change must be picked up within this */
#define WARMUP_S 1.0
#define RSS_SLACK_KIB 1024
#define COMPLAINTS_MAX 25 /* lines of detail; counts go on */
#define REMOVAL_DELAY_MS 200 /* the library's default, set explicitly */

/* ---- reporting ------------------------------------------------------------ */

static atomic_int complaints;

/* Request threads' complaints have a budget of their own: a burst of
 * failed requests must not hide the log line or reloader step that says
 * why. */
static atomic_int request_complaints;

static void vcomplain(atomic_int *budget, const char *fmt, va_list ap)
{
	int n = atomic_fetch_add(budget, 1);

	if (n >= COMPLAINTS_MAX) {
		if (n == COMPLAINTS_MAX)
			printf("soak: (further complaints of this kind are counted, "
			       "not shown)\n");
		return;
	}
	fputs("soak: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
}

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomplain(&complaints, fmt, ap);
	va_end(ap);
}

static void complain_request(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain_request(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomplain(&request_complaints, fmt, ap);
	va_end(ap);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the files served ----------------------------------------------------- */

struct key {
	const char *name; /* request path; NULL for the global module */
	const char *file; /* under the root */
	/* The reloader's own (this thread only). */
	int build;          /* deployed now */
	char link[PATH_MAX]; /* release file the symbolic link points at, or "" */
	/* From log lines, under log_lock. */
	uint64_t loaded;    /* highest "version N loaded" */
	unsigned long removed;
	unsigned long truncated, badabi, initfail; /* refusals logged */
	int expect_errors; /* > 0: a bad file or a re-add is under way */
	/* Read by the request threads. */
	atomic_uint_fast64_t absent;      /* odd: deleted, not back yet */
	/*
	 * odd: install(1) runs, or what it wrote is not loaded yet.  install
	 * unlinks, then creates: the library hides that gap when it is
	 * shorter than the removal delay.  A starved install can take longer;
	 * then not-found is right.  Requests count it here, and the reloader
	 * decides once it knows how long install took.
	 */
	atomic_uint_fast64_t installing;
	atomic_long install_notfound;
	double install_s; /* how long the last install ran (reloader's) */
	atomic_uint_fast64_t min_version; /* the reloader saw it loaded */
};

static struct key keys[NMOD + 1] = {
	{.name = "m0", .file = "m0.so"},
	{.name = "m1", .file = "m1.so"},
	{.name = "m2", .file = "m2.so"},
	{.name = NULL, .file = "_global.so"},
};
static struct key *const global = &keys[NMOD];
static atomic_uint_fast64_t min_global; /* the reloader saw every module bound to it */

static char *root;
static hm_loader *loader;

/* ---- versions: the records init hands over -------------------------------- */

/* reg_lock protects the list and last[]; taken inside log_lock, never around it. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct soak_version *versions;
static uint64_t last[NMOD + 1];
static atomic_long inits, finis, lifecycle_errors;

static struct key *key_of_file(const char *file)
{
	for (int i = 0; i <= NMOD; i++)
		if (strcmp(keys[i].file, file) == 0)
			return &keys[i];
	return NULL;
}

static void on_init(struct soak_app *app, struct soak_version *v)
{
	struct key *k = key_of_file(v->path);

	(void)app;
	atomic_fetch_add(&inits, 1);
	pthread_mutex_lock(&reg_lock);
	v->next = versions;
	versions = v;
	bool reused = k && v->version <= last[k - keys];
	uint64_t prev = k ? last[k - keys] : 0;
	if (k && v->version > prev)
		last[k - keys] = v->version;
	pthread_mutex_unlock(&reg_lock);

	if (!k || v->global != (k == global)) {
		complain("init of an unexpected file: %s", v->path);
		atomic_fetch_add(&lifecycle_errors, 1);
	}
	if (reused) {
		complain("%s: version number %llu given again (after %llu)", v->path,
			(unsigned long long)v->version, (unsigned long long)prev);
		atomic_fetch_add(&lifecycle_errors, 1);
	}
	if (!v->global && (!v->bound || !atomic_load(&v->bound->alive) ||
				  v->bound->version != v->global_version)) {
		complain("%s version %llu: init bound to global version %llu, which is %s",
			v->path, (unsigned long long)v->version,
			(unsigned long long)v->global_version,
			!v->bound ? "missing" : !atomic_load(&v->bound->alive) ? "finalised" :
						   "another one's state");
		atomic_fetch_add(&lifecycle_errors, 1);
	}
}

static void on_fini(struct soak_app *app, struct soak_version *v)
{
	(void)app;
	atomic_fetch_add(&finis, 1);
	if (!v->global) {
		/* A global is finalised after the last module bound to it. */
		if (v->fini_bound != v->bound || !atomic_load(&v->bound->alive)) {
			complain("%s version %llu: fini ran after its global version %llu's",
				v->path, (unsigned long long)v->version,
				(unsigned long long)v->global_version);
			atomic_fetch_add(&lifecycle_errors, 1);
		}
		return;
	}
	pthread_mutex_lock(&reg_lock);
	for (const struct soak_version *m = versions; m; m = m->next) {
		if (m->global || m->bound != v || !atomic_load(&m->alive))
			continue;
		complain("global version %llu finalised while %s version %llu, bound to "
			 "it, is alive", (unsigned long long)v->version, m->path,
			(unsigned long long)m->version);
		atomic_fetch_add(&lifecycle_errors, 1);
	}
	pthread_mutex_unlock(&reg_lock);
}

static struct soak_app app = {.on_init = on_init, .on_fini = on_fini};

/* The record of file's version; reg_lock free. */
static const struct soak_version *version_find(const char *file, uint64_t version)
{
	const struct soak_version *v;

	pthread_mutex_lock(&reg_lock);
	for (v = versions; v; v = v->next)
		if (v->version == version && strcmp(v->path, file) == 0)
			break;
	pthread_mutex_unlock(&reg_lock);
	return v;
}

/* After hm_close(): every version is finalised, nothing reads the records. */
static void versions_free(void)
{
	while (versions) {
		struct soak_version *v = versions;
		versions = v->next;
		free(v);
	}
	memset(last, 0, sizeof last);
}

/* ---- the log: what the reloader waits for ------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;
static long unexpected_logs; /* under log_lock */

/*
 * One step: module n % NMOD, its next operation.  An ln -sf is followed by
 * an mv on the same file: the bad files after it are written in place,
 * which would go through the link (see change_start()).
 */
enum op { OP_CP, OP_MV, OP_INSTALL, OP_LN, OP_MV_OVER_LINK, OP_DELETE, OP_TRUNCATED,
	OP_BADABI, OP_INITFAIL, OP_GLOBAL, OP_TWICE, OP_TOGETHER, NOPS };
static const char *const op_name[NOPS] = {"cp", "mv", "install", "ln -sf",
	"mv over the link", "delete and re-add", "truncated", "wrong ABI", "init fails",
	"global", "two writes", "global and module together"};
/* The step under way, for complaints; written under log_lock, by the
 * reloader only, which may read them without it. */
static unsigned long doing_step;
static enum op doing_op;
static const char *doing_key;

static struct key *key_of_msg(const char *msg)
{
	for (int i = 0; i <= NMOD; i++) {
		size_t n = strlen(keys[i].file);
		if (strncmp(msg, keys[i].file, n) == 0 && (msg[n] == ' ' || msg[n] == ':'))
			return &keys[i];
	}
	return NULL;
}

/* The loader's last lines, debug ones too: printed with a complaint about
 * bindings, so that the order of events that left one behind is known. */
#define RECENT 64
static char recent[RECENT][160];
static unsigned recent_next;

static void recent_print(void)
{
	fprintf(stderr, "soak: the loader's last %d lines:\n", RECENT);
	for (unsigned i = 0; i < RECENT; i++) {
		const char *line = recent[(recent_next + i) % RECENT];
		if (*line)
			fprintf(stderr, "  %s\n", line);
	}
}

static void soak_log(void *arg, int level, const char *msg)
{
	struct key *k = key_of_msg(msg);
	unsigned long long n;

	(void)arg;
	pthread_mutex_lock(&log_lock);
	snprintf(recent[recent_next++ % RECENT], sizeof recent[0], "%.3f %d %s", now_s(), level,
		msg);
	if (level >= HM_LOG_DEBUG) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	if (k && sscanf(msg + strlen(k->file), " version %llu loaded", &n) == 1 &&
	    strstr(msg, " loaded in ")) {
		if (n > k->loaded)
			k->loaded = n;
	} else if (k && strstr(msg, " removed: ")) {
		k->removed++;
	}
	if (level == HM_LOG_ERROR && k && k->expect_errors > 0) {
		if (strstr(msg, "truncated"))
			k->truncated++;
		if (strstr(msg, "ABI 999"))
			k->badabi++;
		if (strstr(msg, "init returned -42"))
			k->initfail++;
	} else if (level <= HM_LOG_WARN) {
		unexpected_logs++;
		complain("logged during step %lu (%s, %s): %s", doing_step,
			op_name[doing_op], doing_key ? doing_key : "-", msg);
	}
	pthread_cond_broadcast(&log_cond);
	pthread_mutex_unlock(&log_lock);
}

/* Wait until done(arg) holds; it runs with log_lock held.  false: timed out. */
static bool await(bool (*done)(void *), void *arg)
{
	struct timespec deadline;
	bool ok;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_S;
	pthread_mutex_lock(&log_lock);
	while (!(ok = done(arg)) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&log_cond, &log_lock, &deadline);
	pthread_mutex_unlock(&log_lock);
	return ok;
}

static uint64_t logged_loaded(const struct key *k)
{
	pthread_mutex_lock(&log_lock);
	uint64_t n = k->loaded;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static void expect_errors(struct key *k, int delta)
{
	pthread_mutex_lock(&log_lock);
	k->expect_errors += delta;
	pthread_mutex_unlock(&log_lock);
}

struct want_load {
	const struct key *k;
	uint64_t after; /* a version newer than this */
	int build;      /* of this build */
	uint64_t got;
};

static bool loaded_done(void *arg)
{
	struct want_load *w = arg;
	const struct soak_version *v;

	if (w->k->loaded <= w->after)
		return false;
	v = version_find(w->k->file, w->k->loaded);
	if (!v || v->build != w->build)
		return false;
	w->got = w->k->loaded;
	return true;
}

struct want_count {
	const unsigned long *count;
	unsigned long after;
};

static bool count_done(void *arg)
{
	const struct want_count *w = arg;
	return *w->count > w->after;
}

/*
 * Every module's current version bound to the global's current version,
 * of the build the global change wrote (a load of the file still being
 * written may have come first: the newest version counts).
 */
static bool rebound_done(void *arg)
{
	struct want_load *w = arg;
	uint64_t g = global->loaded;
	const struct soak_version *gv = version_find(global->file, g);

	if (!gv || gv->build != w->build)
		return false;
	for (int i = 0; i < NMOD; i++) {
		const struct soak_version *v = version_find(keys[i].file, keys[i].loaded);
		if (!v || v->global_version != g)
			return false;
	}
	w->got = g;
	return true;
}

/* ---- real tools ------------------------------------------------------------- */

/* Start a real tool; -1 if it could not be started. */
static pid_t spawn(const char *const argv[])
{
	pid_t pid;
	int rc;

	if ((rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ)) != 0) {
		complain("%s: %s", argv[0], strerror(rc));
		return -1;
	}
	return pid;
}

/* Wait for a tool started by spawn(): did it succeed? */
static bool reap(pid_t pid, const char *const argv[])
{
	int status;

	if (pid < 0)
		return false;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			complain("waitpid %s: %s", argv[0], strerror(errno));
			return false;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	complain("%s %s ...: %s %d", argv[0], argv[1],
		WIFEXITED(status) ? "exit status" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return false;
}

static bool tool(const char *const argv[])
{
	return reap(spawn(argv), argv);
}

static const char *fixture(const char *name)
{
	static char buf[PATH_MAX];

	snprintf(buf, sizeof buf, "%s/%s.so", FIXTURES, name);
	return buf;
}

static const char *build_of(const struct key *k, int build)
{
	static char name[64];

	snprintf(name, sizeof name, "%s_v%d", k == global ? "soak_global" : "soak_mod", build);
	return fixture(name);
}

static const char *in_root(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *p = buf[next++ % 4];

	if (snprintf(p, PATH_MAX, "%s/%s", root, rel) >= PATH_MAX)
		p[0] = '\0'; /* no such file: the tool says so */
	return p;
}

enum writer { CP, MV, INSTALL, LN, READD, GLOBAL, NWRITERS };
static const char *const writer_name[NWRITERS] = {
	"cp", "mv", "install", "ln -sf", "re-add", "global"};

/* Put src at k's file the way writer does; false if a tool failed. */
static bool put(struct key *k, enum writer how, const char *src)
{
	static unsigned seq;
	char stage[PATH_MAX], rel[64];
	const char *dst = in_root(k->file);

	switch (how) {
	case CP: {
		const char *cp[] = {"cp", src, dst, NULL};
		return tool(cp);
	}
	case MV: { /* a dot file: the watcher ignores it */
		snprintf(stage, sizeof stage, "%s/.stage-%s", root, k->file);
		const char *cp[] = {"cp", src, stage, NULL};
		const char *mv[] = {"mv", "-f", stage, dst, NULL};
		return tool(cp) && tool(mv);
	}
	case INSTALL: {
		const char *install[] = {"install", "-m", "644", src, dst, NULL};
		double t0 = now_s();
		atomic_fetch_add(&k->installing, 1); /* odd: see struct key */
		bool ok = tool(install);
		k->install_s = now_s() - t0;
		return ok;
	}
	case LN: { /* a release directory, and a relative link to it */
		snprintf(rel, sizeof rel, ".rel/%s-%u", k->file, ++seq);
		const char *cp[] = {"cp", src, in_root(rel), NULL};
		const char *ln[] = {"ln", "-sf", rel, dst, NULL};
		return tool(cp) && tool(ln); /* link_done() unlinks the old release */
	}
	default:
		return false;
	}
}

/* After a confirmed deploy by how: the old release file is not needed. */
static void link_done(struct key *k, enum writer how)
{
	if (k->link[0])
		unlink(k->link);
	k->link[0] = '\0';
	if (how == LN) {
		char target[64];
		ssize_t n = readlink(in_root(k->file), target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			if (snprintf(k->link, sizeof k->link, "%s/%s", root, target) >=
			    (int)sizeof k->link)
				k->link[0] = '\0';
		}
	}
}

/* ---- the reloader ------------------------------------------------------------- */

static unsigned long reloads[NWRITERS];
static unsigned long refusals_truncated, refusals_badabi, refusals_initfail;
static long reloader_errors, stale_bindings;
static double slowest_pickup;

static bool give_up(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool give_up(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	complain("reloader, step %lu (%s, %s): %s", doing_step, op_name[doing_op], doing_key, buf);
	reloader_errors++;
	return false;
}

static void pickup(double since)
{
	double t = now_s() - since;
	if (t > slowest_pickup)
		slowest_pickup = t;
}

/* A change under way: a new build written to k's file by how. */
struct change {
	struct key *k;
	enum writer how;
	struct want_load w;
	double t0;
};

/* Which build is next (or the one after: skip), and what the log says now. */
static void change_prepare(struct change *c, struct key *k, enum writer how, int skip)
{
	*c = (struct change){.k = k, .how = how,
		.w = {.k = k, .after = logged_loaded(k), .build = (k->build + skip) % NBUILDS + 1}};
	c->t0 = now_s();
}

/* Write the next build (or the one after: skip) of k's file with how. */
static bool change_start(struct change *c, struct key *k, enum writer how, int skip)
{
	/* cp writes through a symbolic link, into the release file: the
	 * served name gets no event (hm_watch(3)).  Replace a link instead. */
	if (how == CP && k->link[0])
		how = MV;
	change_prepare(c, k, how, skip);
	if (!put(k, how, build_of(k, c->w.build)))
		return give_up("%s of %s failed", writer_name[how], k->file);
	c->t0 = now_s();
	return true;
}

/*
 * What install(1) wrote is loaded: close its window.  Requests that found
 * the module absent meanwhile were right only if install took longer than
 * the removal delay (its unlink-create gap is within its run).
 */
/* Requests' outcomes (request threads add theirs at the end of a cycle). */
static atomic_long served, notfound, failed, inconsistent;
static long install_gap_notfound;

static void install_done(struct key *k)
{
	if (atomic_load(&k->installing) % 2 == 0)
		return;
	atomic_fetch_add(&k->installing, 1);
	long n = atomic_exchange(&k->install_notfound, 0);
	if (n == 0)
		return;
	if (k->install_s * 1000 > REMOVAL_DELAY_MS) {
		install_gap_notfound += n;
		printf("soak: %s: install ran %.0f ms, longer than the %d ms removal delay: "
		       "%ld requests found the module absent\n",
			k->file, k->install_s * 1000, REMOVAL_DELAY_MS, n);
		return;
	}
	atomic_fetch_add(&failed, n);
	complain("%s: %ld requests found the module absent while install ran %.0f ms, "
		 "within the %d ms removal delay", k->file, n, k->install_s * 1000,
		REMOVAL_DELAY_MS);
}

/* Why rebound_done() is false, for the complaint. */
static void describe_bindings(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	pthread_mutex_lock(&log_lock);
	n += (size_t)snprintf(buf, len, "global version %llu current; ",
		(unsigned long long)global->loaded);
	for (int i = 0; i < NMOD && n < len; i++) {
		const struct soak_version *v = version_find(keys[i].file, keys[i].loaded);
		n += (size_t)snprintf(buf + n, len - n, "%s%s version %llu on global version %llu",
			i ? ", " : "", keys[i].file, (unsigned long long)keys[i].loaded,
			v ? (unsigned long long)v->global_version : 0ull);
	}
	pthread_mutex_unlock(&log_lock);
}

/* Wait until the change serves; for the global, until every module is
 * bound to its new version.  Then requests must not see older versions. */
static bool change_finish(struct change *c)
{
	struct key *k = c->k;

	if (!await(loaded_done, &c->w))
		return give_up("%s by %s: build %d not loaded within %d s", k->file,
			writer_name[c->how], c->w.build, WAIT_S);
	if (k != global || await(rebound_done, &c->w)) {
		pickup(c->t0);
	} else {
		char why[512];
		describe_bindings(why, sizeof why);
		pthread_mutex_lock(&log_lock);
		recent_print();
		pthread_mutex_unlock(&log_lock);
		complain("step %lu (%s, %s): %d s after global version %llu was loaded, not "
			 "every module is bound to the current one: %s", doing_step,
			op_name[doing_op], doing_key, WAIT_S, (unsigned long long)c->w.got, why);
		stale_bindings++;
		/* What an operator would do; then the soak can go on. */
		for (int i = 0; i < NMOD; i++)
			hm_refresh(loader, keys[i].name);
		if (!await(rebound_done, &c->w)) {
			describe_bindings(why, sizeof why);
			return give_up("even after hm_refresh: %s", why);
		}
	}
	install_done(k);
	k->build = c->w.build;
	link_done(k, c->how);
	if (k == global) {
		atomic_store(&min_global, c->w.got);
		for (int i = 0; i < NMOD; i++)
			atomic_store(&keys[i].min_version, logged_loaded(&keys[i]));
	} else {
		atomic_store(&k->min_version, c->w.got);
	}
	return true;
}

/* cp, mv, install, ln -sf in turn for the global module. */
static enum writer global_writer(void)
{
	static const enum writer order[] = {CP, MV, INSTALL, LN};
	static unsigned long n;

	return order[n++ % 4];
}

/* Deploy the next build of k with how, wait until it serves, count it. */
static bool deploy(struct key *k, enum writer how, enum writer counted_as)
{
	struct change c;

	if (!change_start(&c, k, how, 0) || !change_finish(&c))
		return false;
	reloads[counted_as]++;
	return true;
}

/* Two builds written back to back: the second one must end up serving. */
static bool deploy_twice(struct key *k)
{
	struct change first, second;

	if (!change_start(&first, k, CP, 0) || !change_start(&second, k, MV, 1) ||
	    !change_finish(&second))
		return false;
	reloads[CP]++;
	reloads[MV]++;
	return true;
}

/*
 * The global module and a module in one deploy, as a script installing a
 * directory does: the global first, then the module copied in place while
 * the watcher loads the global and rebinds the modules to it.
 */
static bool deploy_with_global(struct key *k)
{
	struct change glob, mod;

	if (!change_start(&glob, global, global_writer(), 0) ||
	    !change_start(&mod, k, CP, 0) || !change_finish(&mod) || !change_finish(&glob))
		return false;
	reloads[GLOBAL]++;
	reloads[CP]++;
	return true;
}

/*
 * Delete k, wait until it is removed, then write it back with how; with
 * the global module too: requests load the module (it has no version)
 * while the watcher loads the new global and rebinds the modules.
 */
static bool delete_and_readd(struct key *k, enum writer how, bool with_global)
{
	struct want_count w = {.count = &k->removed};
	struct soak_req req = {0};
	struct change mod, glob;
	int rc;

	pthread_mutex_lock(&log_lock);
	w.after = k->removed;
	pthread_mutex_unlock(&log_lock);
	atomic_fetch_add(&k->absent, 1); /* odd: not-found is fine now */
	const char *rm[] = {"rm", "-f", in_root(k->file), NULL};
	if (!tool(rm))
		return give_up("rm of %s failed", k->file);
	link_done(k, READD);
	if (!await(count_done, &w))
		return give_up("%s deleted: not removed within %d s", k->file, WAIT_S);
	if ((rc = hm_dispatch(loader, k->name, &req)) != HM_ENOENT)
		give_up("%s removed, yet a request answered %d (%s)", k->file, rc,
			rc < 0 ? hm_errmsg() : "served");
	if (!with_global) {
		if (!change_start(&mod, k, how, 0) || !change_finish(&mod))
			return false;
	} else { /* both tools at once; install also replaces a link */
		change_prepare(&mod, k, CP, 0);
		change_prepare(&glob, global, INSTALL, 0);
		char *src = strdup(build_of(k, mod.w.build)), *dst = strdup(in_root(k->file));
		const char *cp[] = {"cp", src, dst, NULL};
		pid_t pid = src && dst ? spawn(cp) : -1;
		const char *install[] = {"install", "-m", "644", build_of(global, glob.w.build),
			in_root(global->file), NULL};
		bool ok = reap(spawn(install), install);
		ok = reap(pid, cp) && ok;
		free(src);
		free(dst);
		if (!ok)
			return give_up("re-adding %s with %s failed", k->file, global->file);
		if (!change_finish(&mod) || !change_finish(&glob))
			return false;
	}
	atomic_fetch_add(&k->absent, 1); /* back: every request must pass again */
	reloads[READD]++;
	if (with_global)
		reloads[GLOBAL]++;
	return true;
}

enum bad { TRUNCATED, BADABI, INITFAIL };

/* Put a bad file at k's place, wait for its refusal, then a good one. */
static bool bad_then_good(struct key *k, enum bad bad)
{
	struct want_count w;
	const char *dst = in_root(k->file);
	bool ok;

	pthread_mutex_lock(&log_lock);
	w.count = bad == TRUNCATED ? &k->truncated : bad == BADABI ? &k->badabi : &k->initfail;
	w.after = *w.count;
	pthread_mutex_unlock(&log_lock);
	switch (bad) {
	case TRUNCATED: { /* the first 3000 bytes of the next build, in place */
		char in[PATH_MAX + 3];
		snprintf(in, sizeof in, "if=%s", build_of(k, k->build % NBUILDS + 1));
		char out[PATH_MAX + 3];
		snprintf(out, sizeof out, "of=%s", dst);
		const char *dd[] = {"dd", in, out, "bs=3000", "count=1", "status=none", NULL};
		ok = tool(dd);
		break;
	}
	case BADABI:
		ok = put(k, CP, fixture("badabi"));
		break;
	default:
		ok = put(k, MV, fixture("initfail"));
		break;
	}
	if (!ok)
		return give_up("writing a bad file to %s failed", k->file);
	if (!await(count_done, &w))
		return give_up("%s: the %s file was not refused within %d s", k->file,
			bad == TRUNCATED ? "truncated" : bad == BADABI ? "wrong-ABI" : "init-failing",
			WAIT_S);
	if (bad == TRUNCATED)
		refusals_truncated++;
	else if (bad == BADABI)
		refusals_badabi++;
	else
		refusals_initfail++;
	/* The old version kept serving; now a good one. */
	enum writer how = bad == TRUNCATED ? MV : bad == BADABI ? INSTALL : CP;
	return deploy(k, how, how);
}

static bool step(unsigned long n, struct key **window)
{
	struct key *k = &keys[n % NMOD];
	unsigned long round = n / NMOD;
	enum op op = (enum op)(round % NOPS);
	struct change c;

	*window = NULL;
	pthread_mutex_lock(&log_lock);
	doing_step = n;
	doing_op = op;
	doing_key = op == OP_GLOBAL ? global->file : k->file;
	pthread_mutex_unlock(&log_lock);
	switch (op) {
	case OP_CP:
		return deploy(k, CP, CP);
	case OP_MV:
	case OP_MV_OVER_LINK:
		return deploy(k, MV, MV);
	case OP_INSTALL:
		return deploy(k, INSTALL, INSTALL);
	case OP_LN:
		return deploy(k, LN, LN);
	case OP_DELETE: /* a request may load a half-copied file and refuse it */
		*window = k;
		expect_errors(k, 1);
		switch (round / NOPS % 3) {
		case 0:
			return delete_and_readd(k, CP, false);
		case 1:
			return delete_and_readd(k, INSTALL, false);
		default:
			return delete_and_readd(k, CP, true);
		}
	case OP_TRUNCATED:
	case OP_BADABI:
	case OP_INITFAIL:
		*window = k;
		expect_errors(k, 1);
		return bad_then_good(k, op == OP_TRUNCATED ? TRUNCATED :
					op == OP_BADABI ? BADABI : INITFAIL);
	case OP_GLOBAL:
		if (!change_start(&c, global, global_writer(), 0) || !change_finish(&c))
			return false;
		reloads[GLOBAL]++;
		return true;
	case OP_TWICE:
		return deploy_twice(k);
	case OP_TOGETHER:
		return deploy_with_global(k);
	default:
		return false;
	}
}

static void reload_until(double deadline)
{
	static unsigned long n;
	struct key *open = NULL, *opened;

	while (now_s() < deadline) {
		bool ok = step(n++, &opened);
		/* An error logged late (a request that read a half-copied file
		 * while another loaded the whole one) is still expected: close
		 * each window one step later. */
		if (open)
			expect_errors(open, -1);
		open = opened;
		if (!ok)
			break; /* what is deployed is not known any more */
	}
	if (open)
		expect_errors(open, -1);
}

/* ---- the request threads ---------------------------------------------------- */

static pthread_barrier_t cycle_start, cycle_end;
static atomic_bool stop, quit;

static const struct {
	bool global;
	enum soak_hook hook;
} chain[] = {
	{true, SOAK_PREPARE}, {false, SOAK_PREPARE}, {false, SOAK_HANDLE},
	{false, SOAK_COMMIT}, {false, SOAK_RELEASE}, {true, SOAK_COMMIT}, {true, SOAK_RELEASE},
};
#define CHAIN_LEN (int)(sizeof chain / sizeof chain[0])

static const char *const hook_name[] = {"prepare", "handle", "commit", "rollback", "release"};

/* Was req one request on one consistent, live and current pair?  Else why. */
static bool consistent(const struct key *k, const struct soak_req *req, int rc,
	uint64_t min_v, uint64_t min_g, char *why, size_t len)
{
	if (req->n != CHAIN_LEN) {
		snprintf(why, len, "%d hooks ran, not %d", req->n, CHAIN_LEN);
		return false;
	}
	for (int i = 0; i < CHAIN_LEN; i++) {
		const struct soak_stamp *s = &req->stamp[i];
		if (s->global != chain[i].global || s->hook != chain[i].hook) {
			snprintf(why, len, "hook %d was %s.%s, not %s.%s", i, s->global ? "G" : "M",
				hook_name[s->hook], chain[i].global ? "G" : "M",
				hook_name[chain[i].hook]);
			return false;
		}
	}
	const struct soak_stamp *g = &req->stamp[0], *m = &req->stamp[1];
	const struct soak_version *mv = m->state, *gv = g->state;
	for (int i = 0; i < CHAIN_LEN; i++) {
		const struct soak_stamp *s = &req->stamp[i], *ref = s->global ? g : m;
		if (s->version != m->version || s->global_version != m->global_version) {
			snprintf(why, len, "hooks saw versions (%llu, %llu) and then (%llu, %llu)",
				(unsigned long long)m->version, (unsigned long long)m->global_version,
				(unsigned long long)s->version, (unsigned long long)s->global_version);
			return false;
		}
		if (s->build != ref->build || s->state != ref->state || s->global_state != gv) {
			snprintf(why, len, "%s.%s ran other code or state than the request's first %s hook",
				s->global ? "G" : "M", hook_name[s->hook], s->global ? "global" : "module");
			return false;
		}
		if (s->layer != (s->global ? HM_LAYER_GLOBAL : HM_LAYER_MODULE)) {
			snprintf(why, len, "%s.%s ran as layer %d", s->global ? "G" : "M",
				hook_name[s->hook], s->layer);
			return false;
		}
		if (!s->alive) {
			snprintf(why, len, "%s.%s ran on a finalised version", s->global ? "G" : "M",
				hook_name[s->hook]);
			return false;
		}
	}
	if (m->global_version == 0 || !gv) {
		snprintf(why, len, "version %llu ran without its global module",
			(unsigned long long)m->version);
		return false;
	}
	if (!mv || mv->magic != SOAK_MAGIC || mv->global || mv->build != m->build ||
	    mv->version != m->version || strcmp(mv->path, k->file) != 0) {
		snprintf(why, len, "module code build %d, version %llu, ran with the state of "
				   "%s build %d version %llu", m->build, (unsigned long long)m->version,
			mv ? mv->path : "nothing", mv ? mv->build : 0,
			mv ? (unsigned long long)mv->version : 0ull);
		return false;
	}
	if (gv->magic != SOAK_MAGIC || !gv->global || gv->build != g->build ||
	    gv->version != m->global_version) {
		snprintf(why, len, "global code build %d, version %llu, ran with the state of "
				   "%s build %d version %llu", g->build,
			(unsigned long long)m->global_version, gv->path, gv->build,
			(unsigned long long)gv->version);
		return false;
	}
	if (mv->bound != gv || mv->global_version != m->global_version) {
		snprintf(why, len, "module version %llu, bound to global version %llu at init, "
				   "ran with global version %llu", (unsigned long long)m->version,
			(unsigned long long)mv->global_version,
			(unsigned long long)m->global_version);
		return false;
	}
	if (rc != SOAK_RESULT(m->build, g->build)) {
		snprintf(why, len, "answered %d for builds %d and %d", rc, m->build, g->build);
		return false;
	}
	if (m->version < min_v || m->global_version < min_g) {
		snprintf(why, len, "stale: ran on (%llu, %llu) after (%llu, %llu) was loaded",
			(unsigned long long)m->version, (unsigned long long)m->global_version,
			(unsigned long long)min_v, (unsigned long long)min_g);
		return false;
	}
	return true;
}

struct counts {
	long served, notfound, failed, inconsistent;
};

static void one_request(struct key *k, struct counts *c)
{
	struct soak_req req;
	char why[256];

	req.n = 0;
	uint64_t absent = atomic_load(&k->absent), installing = atomic_load(&k->installing);
	uint64_t min_v = atomic_load(&k->min_version), min_g = atomic_load(&min_global);
	int rc = hm_dispatch(loader, k->name, &req);
	bool was_absent = absent % 2 || atomic_load(&k->absent) != absent;
	bool was_installing = installing % 2 || atomic_load(&k->installing) != installing;

	if (rc < 0) {
		if (was_absent && (rc == HM_ENOENT || rc == HM_ECHANGED || rc == HM_ENOTELF)) {
			c->notfound++;
			return;
		}
		if (was_installing && rc == HM_ENOENT) { /* judged by install_done() */
			atomic_fetch_add(&k->install_notfound, 1);
			return;
		}
		c->failed++;
		pthread_mutex_lock(&log_lock);
		unsigned long step = doing_step;
		enum op op = doing_op;
		const char *key = doing_key;
		pthread_mutex_unlock(&log_lock);
		complain_request("request %s failed during step %lu (%s, %s): %s: %s", k->name,
			step, op_name[op], key ? key : "-", hm_err_name(rc), hm_errmsg());
		return;
	}
	if (!consistent(k, &req, rc, min_v, min_g, why, sizeof why)) {
		c->inconsistent++;
		complain_request("request %s inconsistent: %s", k->name, why);
		return;
	}
	c->served++;
}

static void count(const struct counts *c)
{
	atomic_fetch_add(&served, c->served);
	atomic_fetch_add(&notfound, c->notfound);
	atomic_fetch_add(&failed, c->failed);
	atomic_fetch_add(&inconsistent, c->inconsistent);
}

static void *requester(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	for (;;) {
		struct counts c = {0};
		pthread_barrier_wait(&cycle_start);
		if (atomic_load(&quit))
			return NULL;
		while (!atomic_load_explicit(&stop, memory_order_relaxed))
			one_request(&keys[i++ % NMOD], &c);
		count(&c);
		pthread_barrier_wait(&cycle_end);
	}
}

/* ---- a hang is a failure, not a stuck build ------------------------------- */

static pthread_mutex_t dog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_cond = PTHREAD_COND_INITIALIZER;
static bool dog_done;
static double dog_limit;

static void *watchdog(void *arg)
{
	struct timespec deadline;
	int rc = 0;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)dog_limit;
	pthread_mutex_lock(&dog_lock);
	while (!dog_done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&dog_cond, &dog_lock, &deadline);
	if (!dog_done) {
		printf("soak: still running after %.0f s: hung; aborting\n", dog_limit);
		fflush(stdout);
		abort();
	}
	pthread_mutex_unlock(&dog_lock);
	return NULL;
}

/* ---- one cycle: open, soak, close --------------------------------------------- */

static int close_rc;
static uint64_t pinned, rescans;

static void cycle(double seconds)
{
	struct hm_options o;
	struct hm_status *st;
	int rc;

	hm_options_init(&o);
	o.root = root;
	o.app = &app;
	o.log = soak_log;
	o.watch = HM_WATCH_INOTIFY;
	o.removal_delay_ms = REMOVAL_DELAY_MS;
	for (int i = 0; i <= NMOD; i++) { /* a new loader counts from 1 */
		keys[i].loaded = 0;
		atomic_store(&keys[i].min_version, 0);
	}
	atomic_store(&min_global, 0);
	if ((rc = hm_open(&loader, &o)) < 0) {
		complain("hm_open: %s", hm_errmsg());
		close_rc = rc;
		return;
	}
	/* Load every module first: one with no version yet answers requests
	 * with whatever its file holds while the first cp writes it. */
	struct counts c = {0};
	for (int i = 0; i < NMOD; i++)
		one_request(&keys[i], &c);
	count(&c);
	atomic_store(&stop, false);
	pthread_barrier_wait(&cycle_start);
	reload_until(now_s() + seconds);
	atomic_store(&stop, true);
	pthread_barrier_wait(&cycle_end);

	if (hm_status_get(loader, &st) == 0) {
		pinned += st->pinned;
		rescans += st->rescans;
		hm_status_free(st);
	}
	if ((rc = hm_close(loader, WAIT_S * 1000)) < 0) {
		complain("hm_close: %s", hm_errmsg());
		close_rc = rc;
		return; /* the loader stays: the resource checks will say so */
	}
	loader = NULL;
	versions_free();
}

/* ---- resources --------------------------------------------------------------- */

struct usage {
	long fds, maps, rss_kib;
	long heap_kib; /* malloc'd and not freed; -1: unknown */
};

static void measure(struct usage *u)
{
	DIR *d;
	FILE *f;
	int c;
	long pages = 0;

	u->fds = u->maps = u->rss_kib = u->heap_kib = -1;
#ifdef __GLIBC__
	malloc_trim(0); /* free memory the allocator keeps is no leak */
#if __GLIBC_PREREQ(2, 33)
	struct mallinfo2 mi = mallinfo2();
	u->heap_kib = (long)((mi.uordblks + mi.hblkhd) / 1024);
#endif
#endif
	if ((d = opendir("/proc/self/fd")) != NULL) {
		u->fds = -1; /* the directory's own descriptor */
		for (struct dirent *de; (de = readdir(d)) != NULL;)
			if (de->d_name[0] != '.')
				u->fds++;
		closedir(d);
	}
	if ((f = fopen("/proc/self/maps", "r")) != NULL) {
		u->maps = 0;
		while ((c = getc(f)) != EOF)
			u->maps += c == '\n';
		fclose(f);
	}
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		long size;
		if (fscanf(f, "%ld %ld", &size, &pages) == 2)
			u->rss_kib = pages * (sysconf(_SC_PAGESIZE) / 1024);
		fclose(f);
	}
}

/* ---- setting up ------------------------------------------------------------- */

static bool make_root(void)
{
	const char *tmp = getenv("TMPDIR");
	char *dir;

	if (asprintf(&root, "%s/hotmod-soak-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
	    !mkdtemp(root) || chmod(root, 0755) < 0) {
		complain("root directory: %s", strerror(errno));
		return false;
	}
	if (asprintf(&dir, "%s/.rel", root) < 0 || mkdir(dir, 0755) < 0) {
		complain(".rel: %s", strerror(errno));
		return false;
	}
	free(dir);
	for (int i = 0; i <= NMOD; i++) {
		keys[i].build = 1;
		if (!put(&keys[i], CP, build_of(&keys[i], 1)))
			return false;
	}
	return true;
}

static void remove_root(void)
{
	const char *rm[] = {"rm", "-rf", root, NULL};
	tool(rm);
	free(root);
}

/* ---- checks ------------------------------------------------------------------- */

static int passed, failed_checks;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (ok)
		passed++;
	else
		failed_checks++;
}

static void skip(const char *what)
{
	printf("skip: %s (not comparable under a sanitizer)\n", what);
}

int main(void)
{
	const char *env = getenv("SOAK_SECONDS");
	double seconds = env && *env ? strtod(env, NULL) : 60;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nthreads = (int)(ncpu > 0 ? ncpu : 1) * 2;
	pthread_t *threads = calloc((size_t)nthreads, sizeof *threads);
	pthread_t dog;
	struct usage before, after;
	double warmup = seconds < WARMUP_S ? seconds : WARMUP_S, t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef __GLIBC__
	/* glibc makes a 64 MiB arena for a thread that finds the others busy,
	 * as contention happens to fall: mappings nobody leaked.  One arena
	 * keeps the count exact; no request path allocates. */
	mallopt(M_ARENA_MAX, 1);
#endif
	umask(022); /* a group-writable file would be refused as unsafe */
	if (!threads || !(seconds > 0)) {
		printf("soak: SOAK_SECONDS must be a positive number of seconds\n");
		return 2;
	}
	dog_limit = warmup + seconds + 4 * WAIT_S + 60;
	pthread_create(&dog, NULL, watchdog, NULL);
	if (!make_root()) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	printf("soak: %.0f s after a %.0f s warm-up, %d request threads, %d modules and "
	       "their global module under %s\n", seconds, warmup, nthreads, NMOD, root);

	pthread_barrier_init(&cycle_start, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&cycle_end, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&threads[i], NULL, requester, (void *)(uintptr_t)i);

	cycle(warmup);
	measure(&before);
	t0 = now_s();
	if (close_rc == 0)
		cycle(seconds);
	seconds = now_s() - t0;
	measure(&after);

	atomic_store(&quit, true);
	pthread_barrier_wait(&cycle_start);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	remove_root();
	pthread_mutex_lock(&dog_lock);
	dog_done = true;
	pthread_cond_signal(&dog_cond);
	pthread_mutex_unlock(&dog_lock);
	pthread_join(dog, NULL);

	unsigned long nreloads = 0;
	for (int i = 0; i < NWRITERS; i++)
		nreloads += reloads[i];
	printf("requests served:       %ld (%.0f/s)\n", atomic_load(&served),
		(double)atomic_load(&served) / (seconds + warmup));
	printf("  not found while deleted: %ld\n", atomic_load(&notfound));
	printf("  not found while a slow install(1) ran: %ld\n", install_gap_notfound);
	printf("failed requests:       %ld\n", atomic_load(&failed));
	printf("inconsistent requests: %ld\n", atomic_load(&inconsistent));
	printf("reloads done:          %lu (cp %lu, mv %lu, install %lu, ln -sf %lu, "
	       "delete and re-add %lu, global %lu); slowest pick-up %.0f ms\n",
		nreloads, reloads[CP], reloads[MV], reloads[INSTALL], reloads[LN], reloads[READD],
		reloads[GLOBAL], slowest_pickup * 1000);
	printf("bad files refused:     %lu (truncated %lu, wrong ABI %lu, init fails %lu)\n",
		refusals_truncated + refusals_badabi + refusals_initfail, refusals_truncated,
		refusals_badabi, refusals_initfail);
	printf("versions:              %ld inits, %ld finis, %llu pinned; %llu rescans\n",
		atomic_load(&inits), atomic_load(&finis), (unsigned long long)pinned,
		(unsigned long long)rescans);
	printf("descriptors:           %ld before, %ld after\n", before.fds, after.fds);
	printf("mappings:              %ld before, %ld after\n", before.maps, after.maps);
	printf("RSS:                   %ld KiB before, %ld KiB after\n", before.rss_kib,
		after.rss_kib);
	if (before.heap_kib >= 0 && !SOAK_SANITIZED)
		printf("heap in use:           %ld KiB before, %ld KiB after\n", before.heap_kib,
			after.heap_kib);

	check(atomic_load(&served) > 0, "requests were served");
	check(nreloads > 0 && refusals_truncated + refusals_badabi + refusals_initfail > 0,
		"reloads were done and bad files refused");
	check(reloader_errors == 0, "every change was picked up as expected (%ld not)",
		reloader_errors);
	check(stale_bindings == 0, "every module followed its global module (%ld times one "
				   "stayed bound to an older version)", stale_bindings);
	check(atomic_load(&failed) == 0, "no request failed (%ld did)", atomic_load(&failed));
	check(atomic_load(&inconsistent) == 0, "every request ran on one consistent pair (%ld did not)",
		atomic_load(&inconsistent));
	check(atomic_load(&lifecycle_errors) == 0,
		"inits and finis in order: numbers not reused, globals outlive their modules "
		"(%ld violations)", atomic_load(&lifecycle_errors));
	pthread_mutex_lock(&log_lock);
	long unexpected = unexpected_logs;
	pthread_mutex_unlock(&log_lock);
	check(unexpected == 0, "no error or warning logged but for bad files (%ld were)",
		unexpected);
	check(close_rc == 0, "hm_close returned 0 (%d)", close_rc);
	check(atomic_load(&inits) == atomic_load(&finis), "init count equals fini count");
	check(pinned == 0, "no version stayed mapped after dlclose");
	check(after.fds == before.fds && before.fds >= 0, "descriptors back to where they started");
	if (SOAK_SANITIZED) {
		skip("mappings back to where they started");
		skip("RSS back to where it started");
	} else {
		check(after.maps == before.maps && before.maps >= 0,
			"mappings back to where they started");
		check(after.rss_kib >= 0 && after.rss_kib - before.rss_kib <= RSS_SLACK_KIB,
			"RSS back to where it started, within %d KiB", RSS_SLACK_KIB);
	}
	printf("%d passed, %d failed\n", passed, failed_checks);
	return failed_checks ? 1 : 0;
}
