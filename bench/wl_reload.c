/* SPDX-License-Identifier: MIT */
/*
 * wl_reload.c - workload 3: how long from rename() of a new module into
 * the tree until a request is answered by it, and where that time goes.
 *
 * As in a deploy: this thread is the deploy tool.  It writes the new file
 * in a directory beside the root (same file system, not watched), renames
 * it over ROOT/m00.so (the way rsync, lld and most deploy tools publish a
 * file: one MOVED_TO event), and sleeps until the answer comes.  A request
 * thread (bm_live) makes requests all along, hm_get, hm_call, hm_put,
 * yielding the CPU between them so that the watcher and the reaper, or
 * anything else on a shared machine, run when they need to; it notes the
 * first answer that comes from the new version.
 *
 * The loader records each load's phases (hm_status_get): load_started
 * (CLOCK_MONOTONIC), copy (open, checks, copy into a sealed memfd, compare
 * with the current bytes), dlopen (dlopen and the descriptor), init, and
 * load_total up to the swap.  So:
 *
 *	event = load_started - rename     inotify, the watcher waking, stat
 *	other = total - copy - dlopen - init   global lookup, bookkeeping
 *	swap  = first answer - (load_started + load_total)
 *	                                  until a request sees and runs it
 */
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

struct bm_reload_sample {
	double total, event, copy, dlopen, init, other, swap;
};

const struct hm_module_status *bm_find_status(const struct hm_status *s,
	const char *path)
{
	for (size_t i = 0; i < s->nmodules; i++)
		if (strcmp(s->modules[i].path, path) == 0)
			return &s->modules[i];
	return NULL;
}

/* Wait until the reaper finalised every replaced version. */
void bm_wait_reaped(hm_loader *l, size_t alive)
{
	int64_t deadline = bm_now() + 10 * (int64_t)1000000000;

	for (;;) {
		struct hm_status *s;
		if (hm_status_get(l, &s) < 0)
			bm_die("hm_status_get: %s", hm_errmsg());
		size_t n = s->versions_alive;
		hm_status_free(s);
		if (n <= alive)
			return;
		if (bm_now() > deadline)
			bm_die("%zu versions still alive after 10 s", n);
		bm_sleep_ns(200000);
	}
}

/* ---- a request thread that runs all along ---------------------------------- */

struct bm_live {
	hm_loader *l;
	pthread_t th;
	atomic_int stop;
	/*
	 * The deploy side asks for the first answer of a version newer than
	 * newer_than; the request thread gives when (t_first, 0 until then),
	 * what the handler returned and which version it was.  Under lock:
	 * the question and its answer must belong to the same round.
	 */
	pthread_mutex_t lock;
	atomic_uint_fast64_t newer_than; /* written under lock */
	int64_t t_first;
	int answer;
	uint64_t answered_by;
	char why[512];
};

static void *bm_live_main(void *arg)
{
	struct bm_live *lv = arg;
	hm_module *m;
	int rc;

	while (!atomic_load_explicit(&lv->stop, memory_order_relaxed)) {
		if ((rc = hm_get(lv->l, "m00", &m)) == 0) {
			uint64_t gen = hm_module_version(m);
			rc = hm_call(m, NULL);
			int64_t t = bm_now();
			/* Unlocked first look; decided under the lock. */
			if (gen > atomic_load_explicit(&lv->newer_than, memory_order_relaxed)) {
				pthread_mutex_lock(&lv->lock);
				if (gen > atomic_load_explicit(&lv->newer_than, memory_order_relaxed) &&
				    lv->t_first == 0) {
					lv->answer = rc;
					lv->answered_by = gen;
					lv->t_first = t;
				}
				pthread_mutex_unlock(&lv->lock);
			}
			hm_put(m);
		}
		if (rc < 0) {
			pthread_mutex_lock(&lv->lock);
			snprintf(lv->why, sizeof lv->why, "%s", hm_errmsg());
			lv->t_first = -1;
			pthread_mutex_unlock(&lv->lock);
			break;
		}
		sched_yield();
	}
	return NULL;
}

struct bm_live *bm_live_start(hm_loader *l)
{
	struct bm_live *lv = calloc(1, sizeof *lv);

	if (!lv)
		bm_die("out of memory");
	lv->l = l;
	pthread_mutex_init(&lv->lock, NULL);
	atomic_store(&lv->newer_than, UINT64_MAX);
	if (pthread_create(&lv->th, NULL, bm_live_main, lv) != 0)
		bm_die("pthread_create failed");
	return lv;
}

void bm_live_stop(struct bm_live *lv)
{
	atomic_store(&lv->stop, 1);
	pthread_join(lv->th, NULL);
	pthread_mutex_destroy(&lv->lock);
	free(lv);
}

/*
 * Publish data as target (ROOT/m00.so) by writing stage and renaming it,
 * and sleep until the request thread is answered by the new version; that
 * answer must be want.  Gives the time of the rename and of the answer.
 */
void bm_publish_and_wait(struct bm_live *lv, const char *stage, const char *target,
	const void *data, size_t len, int want, int64_t *t_rename, int64_t *t_first)
{
	hm_module *m;
	uint64_t before;
	int64_t t;

	if (hm_get(lv->l, "m00", &m) < 0)
		bm_die("hm_get m00: %s", hm_errmsg());
	before = hm_module_version(m);
	hm_put(m);
	pthread_mutex_lock(&lv->lock);
	lv->t_first = 0;
	atomic_store_explicit(&lv->newer_than, before, memory_order_relaxed);
	pthread_mutex_unlock(&lv->lock);
	if (bm_write_file(stage, data, len) < 0)
		bm_die("%s: %s", stage, strerror(errno));
	*t_rename = bm_now();
	if (rename(stage, target) < 0)
		bm_die("rename %s: %s", target, strerror(errno));
	for (;;) {
		pthread_mutex_lock(&lv->lock);
		t = lv->t_first;
		if (t != 0) {
			/* The round is over: nothing more is noted until the next. */
			atomic_store_explicit(&lv->newer_than, UINT64_MAX, memory_order_relaxed);
			break;
		}
		pthread_mutex_unlock(&lv->lock);
		if (bm_now() - *t_rename > 10 * (int64_t)1000000000)
			bm_die("no answer from a new version 10 s after the rename");
		bm_sleep_ns(20000);
	}
	int answer = lv->answer;
	uint64_t by = lv->answered_by;
	pthread_mutex_unlock(&lv->lock);
	if (t < 0)
		bm_die("a request failed: %s", lv->why);
	if (answer != want)
		bm_die("version %llu answered %d, expected %d from the build renamed in "
		       "when version %llu was current", (unsigned long long)by, answer,
			want, (unsigned long long)before);
	*t_first = t;
}

static void bm_print_row(const char *name, double *v, size_t n)
{
	double p50 = bm_percentile(v, n, 50), p99 = bm_percentile(v, n, 99);
	double max = bm_percentile(v, n, 100);

	printf("| %s | %.1f | %.1f | %.1f |\n", name, p50 / 1e3, p99 / 1e3, max / 1e3);
}

/* ---- reference: the load's steps done here, in isolation ------------------------ */

/* A thread blocked in poll() on an inotify descriptor, as the watcher is. */
struct bm_waker {
	int fd;
	atomic_llong woke;
	pthread_t th;
};

static void *bm_waker_main(void *arg)
{
	struct bm_waker *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd p = {.fd = w->fd, .events = POLLIN};
		if (poll(&p, 1, -1) < 0)
			continue;
		int64_t t = bm_now();
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n <= 0)
			break;
		const struct inotify_event *ev = (const struct inotify_event *)buf;
		if (ev->len && strcmp(ev->name, "stop") == 0)
			break;
		atomic_store(&w->woke, t);
	}
	return NULL;
}

/* rename() into a watched directory until a poll()ing thread wakes, n times. */
static void bm_inotify_wake(double *out, unsigned n)
{
	char *dir = bm_mkdtemp("wake"), *stagedir = bm_mkdtemp("stage");
	char from[4096], to[4096];
	struct bm_waker w = {0};

	if ((w.fd = inotify_init1(IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(w.fd, dir, IN_MOVED_TO | IN_CREATE) < 0)
		bm_die("inotify: %s", strerror(errno));
	if (pthread_create(&w.th, NULL, bm_waker_main, &w) != 0)
		bm_die("pthread_create failed");
	snprintf(from, sizeof from, "%s/x.so", stagedir);
	snprintf(to, sizeof to, "%s/x.so", dir);
	for (unsigned i = 0; i < n; i++) {
		if (bm_write_file(from, "x", 1) < 0)
			bm_die("%s: %s", from, strerror(errno));
		atomic_store(&w.woke, 0);
		int64_t t0 = bm_now(), t;
		if (rename(from, to) < 0)
			bm_die("rename %s: %s", to, strerror(errno));
		while ((t = atomic_load(&w.woke)) == 0)
			bm_sleep_ns(20000);
		out[i] = (double)(t - t0);
		bm_sleep_ns(500000);
	}
	snprintf(to, sizeof to, "%s/stop", dir);
	if (bm_write_file(to, "", 0) < 0)
		bm_die("%s: %s", to, strerror(errno));
	pthread_join(w.th, NULL);
	close(w.fd);
	bm_rmtree(dir);
	bm_rmtree(stagedir);
	free(dir);
	free(stagedir);
}

/* Copy path into a sealed memfd, as the loader does (without its checks). */
static int bm_memfd_copy(const char *path, size_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), m;
	off_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		bm_die("%s: %s", path, strerror(errno));
	if ((m = memfd_create("hmbench-ref", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		bm_die("memfd_create: %s", strerror(errno));
	while (off < st.st_size)
		if (sendfile(m, fd, &off, (size_t)(st.st_size - off)) <= 0)
			bm_die("sendfile: %s", strerror(errno));
	if (fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		bm_die("seal: %s", strerror(errno));
	close(fd);
	*size = (size_t)st.st_size;
	return m;
}

/*
 * What the copy and dlopen phases are made of, timed here with a request
 * thread running as during the reloads: the plain copy, two ways of
 * comparing it with the current version's bytes (the loader reads both
 * memfds; it mapped them until the mapping row showed what munmap's TLB
 * shootdowns cost), and dlopen/dlclose of the copy.
 */
static void bm_reference(hm_loader *l, const char *file, unsigned n)
{
	struct bm_live *rq;
	double *t[5];
	static const char *const what[5] = {
		"event: rename() to a thread poll()ing inotify waking up",
		"memfd copy: open, fstat, memfd_create, sendfile, seal",
		"compare by mapping: mmap both, memcmp, munmap both",
		"compare by pread() into two buffers, as the loader does",
		"dlopen of /proc/self/fd/N, dlsym, dlclose",
	};
	size_t size;
	int a, b;

	for (int k = 0; k < 5; k++)
		if (!(t[k] = calloc(n, sizeof *t[k])))
			bm_die("out of memory");
	rq = bm_live_start(l);
	b = bm_memfd_copy(file, &size);
	char *ba = malloc(size), *bb = malloc(size);
	if (!ba || !bb)
		bm_die("out of memory");
	for (unsigned i = 0; i < n; i++) {
		int64_t t0 = bm_now();
		a = bm_memfd_copy(file, &size);
		int64_t t1 = bm_now();
		void *pa = mmap(NULL, size, PROT_READ, MAP_SHARED, a, 0);
		void *pb = mmap(NULL, size, PROT_READ, MAP_SHARED, b, 0);
		if (pa == MAP_FAILED || pb == MAP_FAILED || memcmp(pa, pb, size) != 0)
			bm_die("reference compare failed");
		munmap(pa, size);
		munmap(pb, size);
		int64_t t2 = bm_now();
		if (pread(a, ba, size, 0) != (ssize_t)size || pread(b, bb, size, 0) != (ssize_t)size ||
		    memcmp(ba, bb, size) != 0)
			bm_die("reference pread failed");
		int64_t t3 = bm_now();
		char name[64];
		snprintf(name, sizeof name, "/proc/self/fd/%d", a);
		void *dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
		if (!dl || !dlsym(dl, HM_MODULE_SYMBOL))
			bm_die("reference dlopen: %s", dlerror());
		dlclose(dl);
		int64_t t4 = bm_now();
		close(a);
		t[1][i] = (double)(t1 - t0);
		t[2][i] = (double)(t2 - t1);
		t[3][i] = (double)(t3 - t2);
		t[4][i] = (double)(t4 - t3);
		bm_sleep_ns(500000);
	}
	bm_inotify_wake(t[0], n);
	bm_live_stop(rq);
	close(b);
	free(ba);
	free(bb);

	printf("\nReference: the same steps done by the benchmark itself, %u times, "
	       "with a request thread running as above:\n\n", n);
	printf("| step | p50 (us) | p99 (us) | max (us) |\n|---|---:|---:|---:|\n");
	for (int k = 0; k < 5; k++) {
		bm_print_row(what[k], t[k], n);
		free(t[k]);
	}
}

int bm_wl_reload(const struct bm_opts *o)
{
	char *root = bm_mkdtemp("reload"), *stagedir = bm_mkdtemp("stage");
	char target[4096], stage[4096], path[4096];
	unsigned warm = o->quick ? 5 : 20, n = o->count;
	struct bm_reload_sample *smp = calloc(n, sizeof *smp);
	double *col = calloc(n, sizeof *col);
	void *data[2];
	size_t len[2];
	hm_loader *l;

	if (!smp || !col)
		bm_die("out of memory");
	snprintf(path, sizeof path, "%s/empty_a.so", o->moddir);
	data[0] = bm_read_file(path, &len[0]);
	snprintf(path, sizeof path, "%s/empty_b.so", o->moddir);
	data[1] = bm_read_file(path, &len[1]);
	snprintf(target, sizeof target, "%s/m00.so", root);
	snprintf(stage, sizeof stage, "%s/m00.so", stagedir);
	if (bm_write_file(target, data[0], len[0]) < 0)
		bm_die("%s: %s", target, strerror(errno));
	l = bm_hotmod_open(root, HM_WATCH_INOTIFY);
	struct bm_live *lv = bm_live_start(l);

	for (unsigned i = 0; i < warm + n; i++) {
		int which = (i + 1) % 2; /* m00 starts as a: publish b, a, b, ... */
		int64_t t_rename, t_first;
		struct hm_status *s;
		const struct hm_module_status *ms;

		bm_publish_and_wait(lv, stage, target, data[which], len[which], which + 1,
			&t_rename, &t_first);
		if (hm_status_get(l, &s) < 0)
			bm_die("hm_status_get: %s", hm_errmsg());
		if (!(ms = bm_find_status(s, "m00.so")))
			bm_die("no status for m00.so");
		if (ms->load_started < t_rename)
			bm_die("the load that answered began before the rename");
		if (i >= warm) {
			struct bm_reload_sample *x = &smp[i - warm];
			x->total = (double)(t_first - t_rename);
			x->event = (double)(ms->load_started - t_rename);
			x->copy = (double)ms->load_copy_ns;
			x->dlopen = (double)ms->load_dlopen_ns;
			x->init = (double)ms->load_init_ns;
			x->other = (double)ms->load_total_ns - x->copy - x->dlopen - x->init;
			x->swap = (double)(t_first - (ms->load_started + (int64_t)ms->load_total_ns));
		}
		hm_status_free(s);
		/* Quiet state between reloads: the old version unloaded. */
		bm_wait_reaped(l, 1);
		bm_sleep_ns(1000000);
	}

	printf("\n### Reload latency: rename() of a new %zu-byte module to the first "
	       "request answered by it (%u reloads)\n\n", len[1], n);
	printf("| phase | p50 (us) | p99 (us) | max (us) |\n|---|---:|---:|---:|\n");
#define BM_COL(field, label)                                                  \
	do {                                                                  \
		for (unsigned j = 0; j < n; j++)                              \
			col[j] = smp[j].field;                                \
		bm_print_row(label, col, n);                                  \
	} while (0)
	BM_COL(total, "**rename to first answer**");
	BM_COL(event, "event (rename to load start: inotify, watcher wake-up, stat)");
	BM_COL(copy, "copy (open, checks, memfd copy and compare)");
	BM_COL(dlopen, "dlopen (and descriptor)");
	BM_COL(init, "init hook");
	BM_COL(other, "rest of the load (global, bookkeeping)");
	BM_COL(swap, "swap to first answer (visibility)");
#undef BM_COL
	for (unsigned j = 0; j < n; j++)
		col[j] = smp[j].total;
	double p99 = bm_percentile(col, n, 99);
	printf("\n- Goal, p99 <= 5 ms: p99 = %.2f ms: **%s**.\n", p99 / 1e6,
		p99 <= 5e6 ? "met" : "MISSED");
	printf("- Each phase's percentiles are taken on their own: they do not add up.\n");

	bm_live_stop(lv);
	bm_reference(l, target, n < 200 ? n : 200);

	if (hm_close(l, 10000) < 0)
		bm_die("hm_close: %s", hm_errmsg());
	bm_rmtree(root);
	bm_rmtree(stagedir);
	free(root);
	free(stagedir);
	free(data[0]);
	free(data[1]);
	free(smp);
	free(col);
	return 0;
}
