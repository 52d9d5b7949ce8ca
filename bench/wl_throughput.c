/* SPDX-License-Identifier: MIT */
/*
 * wl_throughput.c - workloads 1 and 2: requests on a current module, 1 or
 * 64 modules, at several thread counts, with the empty handler or the
 * ~1 us one; the atomic pair; and the loop that callgrind counts.
 *
 * Every measurement is interleaved: run r measures every implementation at
 * every thread count, starting with a different implementation each run,
 * so drift on a shared machine spreads over all of them.  Ratios are the
 * median of the per-run ratios (hotmod and its baseline measured moments
 * apart), throughputs the median of the runs.
 */
#include "bench.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const bm_paths[BM_MAX_MODS] = {
	"m00", "m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09",
	"m10", "m11", "m12", "m13", "m14", "m15", "m16", "m17", "m18", "m19",
	"m20", "m21", "m22", "m23", "m24", "m25", "m26", "m27", "m28", "m29",
	"m30", "m31", "m32", "m33", "m34", "m35", "m36", "m37", "m38", "m39",
	"m40", "m41", "m42", "m43", "m44", "m45", "m46", "m47", "m48", "m49",
	"m50", "m51", "m52", "m53", "m54", "m55", "m56", "m57", "m58", "m59",
	"m60", "m61", "m62", "m63"};

/* ---- the work handler's calibration --------------------------------------------- */

double bm_calibrate_work(const char *moddir)
{
	char path[4096], num[32];
	struct bm_dl m;
	unsigned *iters;
	double ns[9];

	snprintf(path, sizeof path, "%s/work_a.so", moddir);
	if (bm_dl_load(path, &m) < 0)
		bm_die("cannot load %s", path);
	if (!(iters = dlsym(m.dl, "bm_work_iters")))
		bm_die("%s: no bm_work_iters", path);
	/*
	 * Two rounds: measure at 1000, scale to 1 us, measure again.  The
	 * fastest of 9 samples: other work on the machine only slows a sample
	 * down, never speeds it up.
	 */
	*iters = 1000;
	for (int round = 0; round < 2; round++) {
		for (int r = 0; r < 9; r++) {
			int64_t t0 = bm_now();
			for (int i = 0; i < 1000; i++)
				m.handle(NULL);
			ns[r] = (double)(bm_now() - t0) / 1000;
		}
		double fastest = bm_percentile(ns, 9, 0);
		if (round == 0)
			*iters = (unsigned)(*iters * 1000.0 / fastest + 0.5);
		else {
			snprintf(num, sizeof num, "%u", *iters);
			setenv("HOTMOD_BENCH_WORK_ITERS", num, 1);
			bm_dl_unload(&m);
			return fastest;
		}
	}
	return 0;
}

/* ---- the atomic pair ------------------------------------------------------------ */

/* The uncontended cost: the fastest of 9 samples (noise only adds). */
static double bm_atomic_pair_ns(void)
{
	static _Alignas(64) atomic_ulong count;
	double ns[9];

	for (int r = 0; r < 9; r++) {
		int64_t t0 = bm_now();
		for (int i = 0; i < 1000000; i++) {
			atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&count, 1, memory_order_acq_rel);
		}
		ns[r] = (double)(bm_now() - t0) / 1000000;
	}
	return bm_percentile(ns, 9, 0);
}

/* ---- tables ------------------------------------------------------------------------- */

#define BM_MAX_RUNS 32
#define BM_MAX_IMPLS 8

struct bm_cell {
	double v[BM_MAX_RUNS];   /* requests per second, per run */
	double cpu[BM_MAX_RUNS]; /* bm_result.cpu_share, per run */
};

static void bm_setup_tree(const struct bm_opts *o, char **root, struct bm_setup *s)
{
	*root = bm_mkdtemp("tp");
	bm_populate(o->moddir, o->work ? "work_a" : "empty_a", *root, o->nmods);
	s->root = *root;
	s->nmods = o->nmods;
	s->paths = bm_paths;
}

static double bm_measure(const struct bm_impl *impl, const struct bm_setup *s,
	unsigned threads, const struct bm_opts *o, double *cpu_share)
{
	struct bm_result res;
	void *st = impl->open(s);

	if (!st)
		bm_die("%s: cannot set up", impl->name);
	bm_run(impl, st, s->nmods, threads, o->warmup_ns, o->duration_ns, false, &res);
	impl->close(st);
	if (getenv("HMBENCH_VERBOSE"))
		fprintf(stderr, "%-14s %u thr: %8.3f M/s, cpu %.2f\n", impl->name, threads,
			res.ops_per_s / 1e6, res.cpu_share);
	*cpu_share = res.cpu_share;
	return res.ops_per_s;
}

/* Median over runs of a[r] / b[r]. */
static double bm_ratio(const struct bm_cell *a, const struct bm_cell *b, unsigned runs)
{
	double q[BM_MAX_RUNS];

	for (unsigned r = 0; r < runs; r++)
		q[r] = a->v[r] / b->v[r];
	return bm_median(q, runs);
}

static double bm_med(const struct bm_cell *c, unsigned runs)
{
	double v[BM_MAX_RUNS];

	memcpy(v, c->v, sizeof v[0] * runs);
	return bm_median(v, runs);
}

static double bm_med_cpu(const struct bm_cell *c, unsigned runs)
{
	double v[BM_MAX_RUNS];

	memcpy(v, c->cpu, sizeof v[0] * runs);
	return bm_median(v, runs);
}

int bm_wl_throughput(const struct bm_opts *o)
{
	static const struct bm_impl *const empty_impls[] = {&bm_direct, &bm_direct_atomic,
		&bm_hotmod, &bm_hotmod_getput, &bm_hotmod_stat, &bm_codelock, &bm_seed,
		&bm_rwlock};
	static const struct bm_impl *const work_impls[] = {&bm_direct, &bm_hotmod,
		&bm_codelock, &bm_seed, &bm_rwlock};
	const struct bm_impl *const *impls = o->work ? work_impls : empty_impls;
	size_t nimpl = o->work ? 5 : 8;
	static struct bm_cell cell[BM_MAX_IMPLS][8];
	unsigned runs = o->runs > BM_MAX_RUNS ? BM_MAX_RUNS : o->runs;
	struct bm_setup s;
	char *root;
	double handler_ns = 0, pair_ns;

	if (o->work)
		handler_ns = bm_calibrate_work(o->moddir);
	pair_ns = bm_atomic_pair_ns();
	bm_setup_tree(o, &root, &s);

	for (unsigned r = 0; r < runs; r++)
		for (unsigned t = 0; t < o->nthreads; t++)
			for (size_t k = 0; k < nimpl; k++) {
				size_t i = (k + r) % nimpl; /* rotate the order each run */
				cell[i][t].v[r] = bm_measure(impls[i], &s, o->threads[t], o,
					&cell[i][t].cpu[r]);
			}

	/* Throughput table. */
	printf("\n### %s handler, %u module%s: throughput, M requests/s (median of %u)\n\n",
		o->work ? "~1 us" : "Empty", o->nmods, o->nmods > 1 ? "s" : "", runs);
	printf("Threads 1, 2, nproc and 2 x nproc (nproc = %ld here).", sysconf(_SC_NPROCESSORS_ONLN));
	if (o->work)
		printf("  Handler: %.0f ns of work (calibrated, single thread, called "
		       "directly; the direct row shows what it cost during the runs).",
			handler_ns);
	printf("\n\n");
	printf("| implementation |");
	for (unsigned t = 0; t < o->nthreads; t++)
		printf(" %u thr |", o->threads[t]);
	printf(" ns/request, 1 thr |\n|---|");
	for (unsigned t = 0; t <= o->nthreads; t++)
		printf("---:|");
	printf("\n");
	for (size_t i = 0; i < nimpl; i++) {
		printf("| %s |", impls[i]->name);
		for (unsigned t = 0; t < o->nthreads; t++)
			printf(" %.2f |", bm_med(&cell[i][t], runs) / 1e6);
		printf(" %.1f |\n", 1e9 / bm_med(&cell[i][0], runs));
	}
	printf("\nCPU the workers got, as a share of min(threads, nproc) CPUs (median; "
	       "below 1: sleeping on a lock, or the machine's other work):\n\n| |");
	for (unsigned t = 0; t < o->nthreads; t++)
		printf(" %u thr |", o->threads[t]);
	printf("\n|---|");
	for (unsigned t = 0; t < o->nthreads; t++)
		printf("---:|");
	printf("\n");
	for (size_t i = 0; i < nimpl; i++) {
		printf("| %s |", impls[i]->name);
		for (unsigned t = 0; t < o->nthreads; t++)
			printf(" %.2f |", bm_med_cpu(&cell[i][t], runs));
		printf("\n");
	}

	/* hotmod against each baseline. */
	size_t hm = 0, direct = 0, datomic = SIZE_MAX;
	for (size_t i = 0; i < nimpl; i++) {
		if (impls[i] == &bm_hotmod)
			hm = i;
		if (impls[i] == &bm_direct)
			direct = i;
		if (impls[i] == &bm_direct_atomic)
			datomic = i;
	}
	printf("\nhotmod's throughput / the other's (median of per-run ratios; > 1: hotmod faster):\n\n");
	printf("| hotmod / |");
	for (unsigned t = 0; t < o->nthreads; t++)
		printf(" %u thr |", o->threads[t]);
	printf("\n|---|");
	for (unsigned t = 0; t < o->nthreads; t++)
		printf("---:|");
	printf("\n");
	bool beats = true;
	double worst_direct = 1e9;
	for (size_t i = 0; i < nimpl; i++) {
		if (i == hm)
			continue;
		printf("| %s |", impls[i]->name);
		for (unsigned t = 0; t < o->nthreads; t++) {
			double q = bm_ratio(&cell[hm][t], &cell[i][t], runs);
			printf(" %.2f |", q);
			if ((impls[i] == &bm_codelock || impls[i] == &bm_seed ||
				    impls[i] == &bm_rwlock) && q <= 1.0)
				beats = false;
			if (i == direct && q < worst_direct)
				worst_direct = q;
		}
		printf("\n");
	}
	printf("\n");
	/* A run the machine's other work disturbed says so in its goal lines. */
	double share = 1;
	for (unsigned t = 0; t < o->nthreads; t++)
		if (bm_med_cpu(&cell[direct][t], runs) < share)
			share = bm_med_cpu(&cell[direct][t], runs);
	char ctx[160];
	snprintf(ctx, sizeof ctx, "%s handler, %u module%s%s", o->work ? "1 us" : "empty",
		o->nmods, o->nmods > 1 ? "s" : "",
		share < 0.9 ? "; DISTURBED: other work took CPU from the run" : "");
	if (!o->work) {
		double hm_ns = 1e9 / bm_med(&cell[hm][0], runs);
		double d_ns = 1e9 / bm_med(&cell[direct][0], runs);
		double da_ns = datomic != SIZE_MAX ? 1e9 / bm_med(&cell[datomic][0], runs) : 0;
		printf("- Atomic increment/decrement pair alone (one thread, uncontended, "
		       "fastest of 9 samples): %.1f ns.\n", pair_ns);
		printf("- Goal (%s), hotmod faster than codelock, seed and rwlock at every "
		       "thread count: **%s**.\n", ctx, beats ? "met" : "MISSED");
		printf("- Goal (%s), single-thread hotmod within 2x of direct + one atomic "
		       "pair: hotmod %.1f ns vs 2 x (direct %.1f + pair %.1f) = %.1f ns "
		       "(direct+atomic measured: %.1f ns): **%s**.\n", ctx,
			hm_ns, d_ns, pair_ns, 2 * (d_ns + pair_ns), da_ns,
			hm_ns <= 2 * (d_ns + pair_ns) ? "met" : "MISSED");
	} else {
		printf("- Goal (%s), hotmod throughput >= 0.95 x direct at every thread "
		       "count: worst ratio %.4f: **%s**.\n", ctx, worst_direct,
			worst_direct >= 0.95 ? "met" : "MISSED");
		printf("- Goal (%s), hotmod faster than codelock, seed and rwlock at every "
		       "thread count: **%s**.\n", ctx, beats ? "met" : "MISSED");
	}

	if (o->dat) {
		FILE *f = fopen(o->dat, "w");
		if (!f)
			bm_die("%s: cannot write", o->dat);
		/* Every implementation's column, NaN where not measured: the
		 * plot's colours then mean the same in every panel. */
		fprintf(f, "threads");
		for (size_t j = 0; j < 8; j++)
			fprintf(f, " %s", empty_impls[j]->name);
		fprintf(f, "\n");
		for (unsigned t = 0; t < o->nthreads; t++) {
			fprintf(f, "%u", o->threads[t]);
			for (size_t j = 0; j < 8; j++) {
				size_t i = 0;
				while (i < nimpl && impls[i] != empty_impls[j])
					i++;
				if (i < nimpl)
					fprintf(f, " %.4f", bm_med(&cell[i][t], runs) / 1e6);
				else
					fprintf(f, " NaN");
			}
			fprintf(f, "\n");
		}
		fclose(f);
	}
	bm_rmtree(root);
	free(root);
	return 0;
}

/* ---- callgrind ----------------------------------------------------------------------- */

/*
 * The loop valgrind --tool=callgrind --toggle-collect=bm_cg_loop counts:
 * instructions inside it, and in what it calls, divided by n.  The loop's
 * own (a compare, an increment, an indirect call) is in every figure alike.
 */
__attribute__((noinline, noipa)) static void bm_cg_loop(const struct bm_impl *impl, void *st,
	unsigned nmods, unsigned n)
{
	unsigned idx = 0;

	for (unsigned i = 0; i < n; i++) {
		if (impl->request(st, idx) < 0)
			bm_die("%s: request failed: %s", impl->name, hm_errmsg());
		if (++idx == nmods)
			idx = 0;
	}
}

int bm_wl_callgrind(const struct bm_opts *o)
{
	const struct bm_impl *impl = bm_impl_find(o->impl ? o->impl : "hotmod");
	struct bm_setup s;
	char *root;
	void *st;

	if (!impl)
		bm_die("no implementation %s", o->impl);
	bm_setup_tree(o, &root, &s);
	if (!(st = impl->open(&s)))
		bm_die("%s: cannot set up", impl->name);
	/* Warm, outside the counted function: lazy binding, first touches. */
	for (unsigned i = 0; i < 1000; i++)
		if (impl->request(st, i % s.nmods) < 0)
			bm_die("%s: request failed: %s", impl->name, hm_errmsg());
	bm_cg_loop(impl, st, s.nmods, o->count);
	impl->close(st);
	bm_rmtree(root);
	free(root);
	return 0;
}
