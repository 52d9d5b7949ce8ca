/* SPDX-License-Identifier: MIT */
/*
 * wl_stall.c - workload 4: do reloads stall requests?  Requests on the
 * ~1 us handler run on every thread, each one timed, while a reloader
 * thread publishes a new version of the module every 20 ms; the same run
 * without reloads is the baseline.  In the baseline run the reloader does
 * everything but the rename (it writes the staged file and removes it), so
 * the only difference between the two is the reload itself.
 *
 * hotmod reloads on its watcher thread while requests use the current
 * version; the seed (baselines.c) reloads lazily, on the request that
 * first sees the new mtime, under the entry lock every other request of
 * that module waits on.  Both run the same way.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BM_PERIOD_NS (20 * 1000000)

struct bm_reloader {
	const char *stage, *target;
	void *data[2];
	size_t len[2];
	bool reload;
	atomic_int stop;
	unsigned published;
	pthread_t th;
};

static void *bm_reloader_main(void *arg)
{
	struct bm_reloader *r = arg;
	struct timespec next;
	unsigned i = 0;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&r->stop)) {
		next.tv_nsec += BM_PERIOD_NS;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		if (atomic_load(&r->stop))
			break;
		int which = (int)(++i % 2); /* the tree starts with _a: b, a, b, ... */
		if (bm_write_file(r->stage, r->data[which], r->len[which]) < 0)
			bm_die("%s: %s", r->stage, strerror(errno));
		if (r->reload) {
			if (rename(r->stage, r->target) < 0)
				bm_die("rename %s: %s", r->target, strerror(errno));
			r->published++;
		} else if (unlink(r->stage) < 0) {
			bm_die("unlink %s: %s", r->stage, strerror(errno));
		}
	}
	return NULL;
}

struct bm_stall_cell {
	double p50[32], p99[32], p999[32], p9999[32], max[32], mops[32], loads[32], cpu[32];
};

static double bm_med32(const double *v, unsigned n)
{
	double c[32];

	memcpy(c, v, sizeof c[0] * n);
	return bm_median(c, n);
}

int bm_wl_stall(const struct bm_opts *o)
{
	static const struct bm_impl *const impls[] = {&bm_hotmod, &bm_seed};
	static struct bm_stall_cell cell[2][2]; /* [impl][reload] */
	static const char *const paths[] = {"m00"};
	unsigned runs = o->runs > 32 ? 32 : o->runs, threads = o->threads[0];
	char path[4096], target[4096], stage[4096];
	double handler_ns = bm_calibrate_work(o->moddir);
	struct bm_reloader r = {0};

	snprintf(path, sizeof path, "%s/work_a.so", o->moddir);
	r.data[0] = bm_read_file(path, &r.len[0]);
	snprintf(path, sizeof path, "%s/work_b.so", o->moddir);
	r.data[1] = bm_read_file(path, &r.len[1]);

	for (unsigned run = 0; run < runs; run++)
		for (int k = 0; k < 4; k++) {
			/* Alternate which goes first, run by run. */
			int i = (k / 2 + (int)run) % 2, reload = (k + (int)run) % 2;
			const struct bm_impl *impl = impls[i];
			char *root = bm_mkdtemp("stall"), *stagedir = bm_mkdtemp("stage");
			struct bm_setup s = {.root = root, .nmods = 1, .paths = paths};
			struct bm_result res;
			void *st;

			snprintf(target, sizeof target, "%s/m00.so", root);
			snprintf(stage, sizeof stage, "%s/m00.so", stagedir);
			if (bm_write_file(target, r.data[0], r.len[0]) < 0)
				bm_die("%s: %s", target, strerror(errno));
			if (!(st = impl->open(&s)))
				bm_die("%s: cannot set up", impl->name);
			uint64_t loads0 = impl->loads(st);
			r.stage = stage;
			r.target = target;
			r.reload = reload;
			r.published = 0;
			atomic_store(&r.stop, 0);
			if (pthread_create(&r.th, NULL, bm_reloader_main, &r) != 0)
				bm_die("pthread_create failed");
			bm_run(impl, st, 1, threads, o->warmup_ns, o->duration_ns, true, &res);
			atomic_store(&r.stop, 1);
			pthread_join(r.th, NULL);
			/* The seed notices on the next request; hotmod already has. */
			impl->request(st, 0);
			uint64_t loads = impl->loads(st) - loads0;
			impl->close(st);
			bm_rmtree(root);
			bm_rmtree(stagedir);
			free(root);
			free(stagedir);

			struct bm_stall_cell *c = &cell[i][reload];
			c->p50[run] = (double)bm_hist_quantile(res.hist, 0.5);
			c->p99[run] = (double)bm_hist_quantile(res.hist, 0.99);
			c->p999[run] = (double)bm_hist_quantile(res.hist, 0.999);
			c->p9999[run] = (double)bm_hist_quantile(res.hist, 0.9999);
			c->max[run] = (double)res.hist->max;
			c->mops[run] = res.ops_per_s / 1e6;
			c->loads[run] = (double)loads;
			c->cpu[run] = res.cpu_share;
			free(res.hist);
		}

	printf("\n### Stall: request latency on %u threads, ~%.0f ns handler, module "
	       "reloaded every 20 ms or not (median of %u runs of %.1f s)\n\n",
		threads, handler_ns, runs, (double)o->duration_ns / 1e9);
	printf("| implementation | reloads | versions loaded/run | M req/s | CPU share | "
	       "p50 (us) | p99 (us) | p99.9 (us) | p99.99 (us) | max (us) |\n"
	       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < 2; i++)
		for (int reload = 0; reload < 2; reload++) {
			struct bm_stall_cell *c = &cell[i][reload];
			printf("| %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.0f |\n",
				impls[i]->name, reload ? "every 20 ms" : "none",
				bm_med32(c->loads, runs), bm_med32(c->mops, runs),
				bm_med32(c->cpu, runs),
				bm_med32(c->p50, runs) / 1e3, bm_med32(c->p99, runs) / 1e3,
				bm_med32(c->p999, runs) / 1e3, bm_med32(c->p9999, runs) / 1e3,
				bm_med32(c->max, runs) / 1e3);
		}
	printf("\n");
	for (int i = 0; i < 2; i++) {
		double with = bm_med32(cell[i][1].p999, runs);
		double without = bm_med32(cell[i][0].p999, runs);
		if (impls[i] == &bm_hotmod)
			printf("- Goal, hotmod's p99.9 with reloads within 2x of without: "
			       "%.2f / %.2f us = %.2f: **%s**.\n", with / 1e3, without / 1e3,
				with / without, with <= 2 * without ? "met" : "MISSED");
		else
			printf("- %s, the same: %.2f / %.2f us = %.2f.\n", impls[i]->name,
				with / 1e3, without / 1e3, with / without);
	}
	printf("- Latencies include one clock read per request; histogram resolution "
	       "1.6 %%.  CPU share: the request threads' CPU time over what %u CPUs "
	       "give (below 1: a lock, or the machine's other work).\n", threads);
	free(r.data[0]);
	free(r.data[1]);
	return 0;
}
