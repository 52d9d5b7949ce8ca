/* SPDX-License-Identifier: MIT */
/*
 * harness.c - the one thread harness every implementation runs under, and
 * the clocks, statistics and file helpers of the benchmarks.
 *
 * Counters are per thread (one cache line each, written only by their
 * thread); the main thread reads them twice, after the warm-up and at the
 * end, so that starting and stopping threads is not in the figure.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks and statistics ------------------------------------------------ */

int64_t bm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bm_sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int bm_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bm_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, bm_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bm_percentile(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, bm_cmp_double);
	/* nearest rank */
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static unsigned bm_msb(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

void bm_hist_add(struct bm_hist *h, uint64_t ns)
{
	size_t i;

	if (ns < 128) {
		i = ns;
	} else {
		unsigned m = bm_msb(ns); /* >= 7 */
		i = 128 + (size_t)(m - 7) * 64 + ((ns >> (m - 6)) & 63);
		if (i >= BM_HIST_BUCKETS)
			i = BM_HIST_BUCKETS - 1;
	}
	h->b[i]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

void bm_hist_merge(struct bm_hist *into, const struct bm_hist *h)
{
	for (size_t i = 0; i < BM_HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	if (h->max > into->max)
		into->max = h->max;
}

/* The upper bound of bucket i. */
static uint64_t bm_hist_top(size_t i)
{
	if (i < 128)
		return i;
	unsigned m = (unsigned)((i - 128) / 64) + 7;
	uint64_t sub = (i - 128) % 64;
	return ((64 + sub + 1) << (m - 6)) - 1;
}

uint64_t bm_hist_quantile(const struct bm_hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->count + 0.5), seen = 0;

	if (want == 0)
		want = 1;
	for (size_t i = 0; i < BM_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t top = bm_hist_top(i);
			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}

/* ---- the process ---------------------------------------------------------- */

long bm_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int bm_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

int bm_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* ---- files ------------------------------------------------------------------ */

void bm_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("hmbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void *bm_read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		bm_die("%s: %s", path, strerror(errno));
	if (!(buf = malloc((size_t)st.st_size + 1)))
		bm_die("out of memory");
	for (size_t got = 0; got < (size_t)st.st_size;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			bm_die("%s: read: %s", path, n < 0 ? strerror(errno) : "short file");
		got += (size_t)n;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

int bm_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = data;

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	/* The loader refuses group- or world-writable files: say 0644 whatever
	 * the umask. */
	if (fchmod(fd, 0644) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

char *bm_mkdtemp(const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	char *dir;

	if (asprintf(&dir, "%s/hmbench-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag) < 0)
		bm_die("out of memory");
	if (!mkdtemp(dir))
		bm_die("mkdtemp %s: %s", dir, strerror(errno));
	/* mkdtemp makes 0700: fine for the loader (owner is us). */
	return dir;
}

static int bm_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void bm_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, bm_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void bm_populate(const char *moddir, const char *name, const char *root, unsigned n)
{
	char path[4096];
	size_t len;
	void *data;

	snprintf(path, sizeof path, "%s/%s.so", moddir, name);
	data = bm_read_file(path, &len);
	for (unsigned i = 0; i < n; i++) {
		/* Separate files (separate inodes): n objects, as in a real tree. */
		snprintf(path, sizeof path, "%s/m%02u.so", root, i);
		if (bm_write_file(path, data, len) < 0)
			bm_die("%s: %s", path, strerror(errno));
	}
	free(data);
}

/* ---- the thread harness --------------------------------------------------- */

struct bm_worker {
	/* Written by its thread only, read by the main thread. */
	_Alignas(64) atomic_uint_fast64_t ops;
	struct bm_shared *sh;
	unsigned id;
	pthread_t th;
	struct bm_hist *hist;
	char pad[64];
};

struct bm_shared {
	const struct bm_impl *impl;
	void *st;
	unsigned nmods, nthreads;
	bool latency;
	_Alignas(64) atomic_int ready;
	atomic_int go;
	atomic_int measuring;
	atomic_int stop;
	atomic_int failed;
	char why[512]; /* the failed request's message */
};

static void *bm_worker_main(void *arg)
{
	struct bm_worker *w = arg;
	struct bm_shared *sh = w->sh;
	const struct bm_impl *impl = sh->impl;
	void *st = sh->st;
	unsigned nmods = sh->nmods;
	unsigned idx = (unsigned)((uint64_t)w->id * nmods / sh->nthreads);
	uint64_t n = 0;
	int64_t t0 = 0, t1;

	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load_explicit(&sh->go, memory_order_acquire))
		sched_yield();
	if (sh->latency)
		t0 = bm_now();
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		if (impl->request(st, idx) < 0) {
			if (atomic_exchange(&sh->failed, 1) == 0)
				snprintf(sh->why, sizeof sh->why, "%s", hm_errmsg());
			break;
		}
		if (++idx == nmods)
			idx = 0;
		atomic_store_explicit(&w->ops, ++n, memory_order_relaxed);
		if (sh->latency) {
			t1 = bm_now();
			if (atomic_load_explicit(&sh->measuring, memory_order_relaxed))
				bm_hist_add(w->hist, (uint64_t)(t1 - t0));
			t0 = t1;
		}
	}
	return NULL;
}

/* CPU time used by the workers so far, ns. */
static int64_t bm_total_cpu(struct bm_worker *ws, unsigned n)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		clockid_t cid;
		struct timespec ts;
		if (pthread_getcpuclockid(ws[i].th, &cid) == 0 && clock_gettime(cid, &ts) == 0)
			sum += (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	return sum;
}

static uint64_t bm_total_ops(struct bm_worker *ws, unsigned n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += atomic_load_explicit(&ws[i].ops, memory_order_relaxed);
	return sum;
}

void bm_run(const struct bm_impl *impl, void *st, unsigned nmods, unsigned nthreads,
	int64_t warmup_ns, int64_t run_ns, bool latency, struct bm_result *res)
{
	struct bm_shared sh = {.impl = impl, .st = st, .nmods = nmods,
		.nthreads = nthreads, .latency = latency};
	struct bm_worker *ws = aligned_alloc(64, sizeof *ws * nthreads);
	uint64_t ops0, ops1;
	int64_t t0, t1, cpu0, cpu1;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!ws)
		bm_die("out of memory");
	memset(ws, 0, sizeof *ws * nthreads);
	for (unsigned i = 0; i < nthreads; i++) {
		ws[i].sh = &sh;
		ws[i].id = i;
		if (latency && !(ws[i].hist = calloc(1, sizeof *ws[i].hist)))
			bm_die("out of memory");
		int rc = pthread_create(&ws[i].th, NULL, bm_worker_main, &ws[i]);
		if (rc != 0)
			bm_die("pthread_create: %s", strerror(rc));
	}
	while (atomic_load(&sh.ready) < (int)nthreads)
		sched_yield();
	atomic_store_explicit(&sh.go, 1, memory_order_release);
	bm_sleep_ns(warmup_ns);
	atomic_store(&sh.measuring, 1);
	cpu0 = bm_total_cpu(ws, nthreads);
	t0 = bm_now();
	ops0 = bm_total_ops(ws, nthreads);
	bm_sleep_ns(run_ns);
	ops1 = bm_total_ops(ws, nthreads);
	t1 = bm_now();
	cpu1 = bm_total_cpu(ws, nthreads);
	atomic_store(&sh.measuring, 0);
	atomic_store(&sh.stop, 1);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(ws[i].th, NULL);
	if (atomic_load(&sh.failed))
		bm_die("%s: a request failed: %s", impl->name, sh.why);
	res->ops = ops1 - ops0;
	res->seconds = (double)(t1 - t0) / 1e9;
	res->ops_per_s = (double)res->ops / res->seconds;
	res->cpu_share = (double)(cpu1 - cpu0) /
			 ((double)(t1 - t0) * (double)(nthreads < ncpu ? nthreads : ncpu));
	res->hist = NULL;
	if (latency) {
		if (!(res->hist = calloc(1, sizeof *res->hist)))
			bm_die("out of memory");
		for (unsigned i = 0; i < nthreads; i++) {
			bm_hist_merge(res->hist, ws[i].hist);
			free(ws[i].hist);
		}
	}
	free(ws);
}
