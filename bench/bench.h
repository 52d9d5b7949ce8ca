/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the benchmarks of libhotmod ("make bench", bench/run.sh).
 *
 * Every implementation serves the same modules (bench/modules/bm.c, loaded
 * with dlopen) through the same thread harness: a request is "take a
 * reference to module idx, call its handler through a function pointer,
 * drop the reference".  Only what happens around the handler differs.
 * Figures that matter are ratios against a baseline measured in the same
 * run, interleaved with it, so that a noisy machine moves both.
 */
#ifndef HOTMOD_BENCH_H
#define HOTMOD_BENCH_H

#include "config.h"

#include <hotmod.h>
#include <hotmod_module.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BM_MAX_MODS 64
#define BM_MAX_THREADS 256

/* ---- clocks, statistics, files (harness.c) ------------------------------ */

/* CLOCK_MONOTONIC in ns. */
int64_t bm_now(void);
void bm_sleep_ns(int64_t ns);
/* Median of n values (sorts v). */
double bm_median(double *v, size_t n);
/* The p-th percentile (0..100) of n values (sorts v). */
double bm_percentile(double *v, size_t n, double p);

/*
 * A latency histogram: exact below 128 ns, then 64 sub-buckets per power
 * of two (1.6 % resolution) up to 2^40 ns.  One per thread; merged after.
 */
#define BM_HIST_BUCKETS (128 + 34 * 64)
struct bm_hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[BM_HIST_BUCKETS];
};
void bm_hist_add(struct bm_hist *h, uint64_t ns);
void bm_hist_merge(struct bm_hist *into, const struct bm_hist *h);
/* The value (ns) below which a fraction q (0..1) of the samples lie. */
uint64_t bm_hist_quantile(const struct bm_hist *h, double q);

/* The process's resident set (KiB), open descriptors, /proc/self/maps lines. */
long bm_rss_kib(void);
int bm_count_fds(void);
int bm_count_maps(void);

/* Read a whole file into malloc'd memory; NULL on error (message printed). */
void *bm_read_file(const char *path, size_t *len);
/* Write data to path (mode 0644, replacing it); 0 or -1. */
int bm_write_file(const char *path, const void *data, size_t len);
/* Make a private directory under $TMPDIR (or /tmp); removed by bm_rmtree. */
char *bm_mkdtemp(const char *tag);
void bm_rmtree(const char *dir);

/* Die with a message: the benchmark program failed (not a speed goal). */
void bm_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- implementations (impl_hotmod.c, baselines.c) ------------------------ */

/*
 * One way of serving module idx's handler.  open() serves the files
 * ROOT/m00.so ... ROOT/m<n-1>.so; request() runs one request on module idx
 * and returns what the handler returned (negative: failed).
 */
struct bm_setup {
	const char *root;
	unsigned nmods;
	const char *const *paths; /* "m00", ... : what a request asks for */
};

struct bm_impl {
	const char *name;
	const char *about; /* one line for the table's legend */
	void *(*open)(const struct bm_setup *s);
	int (*request)(void *st, unsigned idx);
	void (*close)(void *st);
	/* Versions loaded since open (reloads noticed), or NULL. */
	uint64_t (*loads)(void *st);
};

extern const struct bm_impl bm_direct, bm_direct_atomic, bm_codelock, bm_seed, bm_rwlock;
extern const struct bm_impl bm_hotmod, bm_hotmod_getput, bm_hotmod_stat;
const struct bm_impl *bm_impl_find(const char *name);

/* The loader under bm_hotmod's state (for status and reload tests). */
hm_loader *bm_hotmod_loader(void *st);
/* hm_open() on root with the benchmark's options: inotify, preload. */
hm_loader *bm_hotmod_open(const char *root, int watch);

/*
 * A module loaded the way every baseline loads one: the file copied into a
 * memfd and dlopen()ed through /proc/self/fd/N (a name never reused while
 * it is loaded: docs/DESIGN.md, "dlopen identity"), its descriptor's
 * handler looked up.
 */
struct bm_dl {
	void *dl;
	int memfd;
	int (*handle)(hm_ctx *);
};
int bm_dl_load(const char *path, struct bm_dl *out);
void bm_dl_unload(struct bm_dl *m);

/* ---- the thread harness (harness.c) ---------------------------------------- */

struct bm_result {
	double ops_per_s;
	uint64_t ops;
	double seconds;
	/*
	 * CPU time the workers got while measured, over what min(threads,
	 * CPUs) CPUs give in that time: below 1 when they slept (a lock) or
	 * when other work on the machine took the CPUs.
	 */
	double cpu_share;
	struct bm_hist *hist; /* merged latencies, when asked for; caller frees */
};

/*
 * Run impl's requests on nthreads threads for warmup_ns, then measure for
 * run_ns.  Thread i starts at module i * nmods / nthreads and walks them
 * round robin.  With latency, every request is timed into a histogram.
 * Exits the program when a request fails.
 */
void bm_run(const struct bm_impl *impl, void *st, unsigned nmods, unsigned nthreads,
	int64_t warmup_ns, int64_t run_ns, bool latency, struct bm_result *res);

/* ---- workloads (wl_*.c) ------------------------------------------------------ */

struct bm_opts {
	const char *moddir; /* where the built modules are (.libs) */
	const char *dat;    /* write gnuplot data here, if set */
	unsigned runs;      /* repetitions; medians are reported */
	int64_t duration_ns;
	int64_t warmup_ns;
	unsigned count;     /* reloads, cycles, iterations */
	unsigned threads[8];
	unsigned nthreads;  /* entries in threads[] */
	unsigned nmods;
	const char *impl;
	bool work;          /* the ~1 us handler instead of the empty one */
	bool quick;
};

/* Put the module moddir/name.so at root/mNN.so for NN < n. */
void bm_populate(const char *moddir, const char *name, const char *root, unsigned n);
/* Calibrate the work handler to about 1 us; export it for later loads. */
double bm_calibrate_work(const char *moddir);

/*
 * Reloading ROOT/m00.so (wl_reload.c), for the reload and memory workloads:
 * a thread that makes requests on m00 until stopped, and the deploy side
 * that renames a new build in and waits for that thread's first answer
 * from it (which must be want).
 */
struct bm_live;
struct bm_live *bm_live_start(hm_loader *l);
void bm_live_stop(struct bm_live *lv);
void bm_publish_and_wait(struct bm_live *lv, const char *stage, const char *target,
	const void *data, size_t len, int want, int64_t *t_rename, int64_t *t_first);
/* Wait (up to 10 s) until no more than alive versions are alive. */
void bm_wait_reaped(hm_loader *l, size_t alive);
const struct hm_module_status *bm_find_status(const struct hm_status *s,
	const char *path);

int bm_wl_throughput(const struct bm_opts *o);
int bm_wl_callgrind(const struct bm_opts *o);
int bm_wl_reload(const struct bm_opts *o);
int bm_wl_stall(const struct bm_opts *o);
int bm_wl_memory(const struct bm_opts *o);

#endif
