/* SPDX-License-Identifier: MIT */
/*
 * hmbench - the benchmark program behind "make bench" (bench/run.sh runs it
 * once per workload and puts the tables together).
 *
 *	hmbench throughput [--work] --mods N --threads 1,2,4 ...
 *	hmbench callgrind --impl NAME --count N      (under valgrind)
 *	hmbench reload --count N
 *	hmbench stall --threads N
 *	hmbench memory --count N
 *
 * Common options: --moddir DIR (the built bench modules), --runs N,
 * --duration-ms N, --warmup-ms N, --dat FILE (gnuplot data), --quick.
 * Exit status: 0, or 1 when something failed; never because a figure
 * missed its goal (the tables say that).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: hmbench throughput|callgrind|reload|stall|memory --moddir DIR [options]\n"
	"  --runs N  --duration-ms N  --warmup-ms N  --count N  --threads A,B,...\n"
	"  --mods N  --impl NAME  --work  --dat FILE  --quick\n";

static long bm_num(const char *opt, const char *arg, long min, long max)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (!*arg || *end || v < min || v > max)
		bm_die("%s %s: expected a number from %ld to %ld", opt, arg, min, max);
	return v;
}

static void bm_threads(struct bm_opts *o, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;

	if (!copy)
		bm_die("out of memory");
	o->nthreads = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned t = (unsigned)bm_num("--threads", tok, 1, BM_MAX_THREADS);
		bool dup = false;
		for (unsigned i = 0; i < o->nthreads; i++)
			dup |= o->threads[i] == t;
		if (dup)
			continue; /* 2 and nproc may be the same */
		if (o->nthreads == sizeof o->threads / sizeof o->threads[0])
			bm_die("--threads: too many");
		o->threads[o->nthreads++] = t;
	}
	free(copy);
}

int main(int argc, char **argv)
{
	struct bm_opts o = {.runs = 5, .duration_ns = 200000000, .warmup_ns = 50000000,
		.count = 200, .nmods = 1};
	const char *cmd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[1];
	o.threads[0] = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	o.nthreads = 1;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(a, "--work") != 0 && strcmp(a, "--quick") != 0;

		if (takes && !v)
			bm_die("%s needs a value", a);
		if (strcmp(a, "--moddir") == 0)
			o.moddir = v;
		else if (strcmp(a, "--dat") == 0)
			o.dat = v;
		else if (strcmp(a, "--runs") == 0)
			o.runs = (unsigned)bm_num(a, v, 1, 32);
		else if (strcmp(a, "--duration-ms") == 0)
			o.duration_ns = bm_num(a, v, 1, 600000) * 1000000;
		else if (strcmp(a, "--warmup-ms") == 0)
			o.warmup_ns = bm_num(a, v, 0, 600000) * 1000000;
		else if (strcmp(a, "--count") == 0)
			o.count = (unsigned)bm_num(a, v, 1, 100000000);
		else if (strcmp(a, "--threads") == 0)
			bm_threads(&o, v);
		else if (strcmp(a, "--mods") == 0)
			o.nmods = (unsigned)bm_num(a, v, 1, BM_MAX_MODS);
		else if (strcmp(a, "--impl") == 0)
			o.impl = v;
		else if (strcmp(a, "--work") == 0)
			o.work = true;
		else if (strcmp(a, "--quick") == 0)
			o.quick = true;
		else
			bm_die("unknown option %s\n%s", a, usage);
		i += takes;
	}
	if (!o.moddir)
		bm_die("--moddir is required\n%s", usage);
	if (strcmp(cmd, "throughput") == 0)
		return bm_wl_throughput(&o);
	if (strcmp(cmd, "callgrind") == 0)
		return bm_wl_callgrind(&o);
	if (strcmp(cmd, "reload") == 0)
		return bm_wl_reload(&o);
	if (strcmp(cmd, "stall") == 0)
		return bm_wl_stall(&o);
	if (strcmp(cmd, "memory") == 0)
		return bm_wl_memory(&o);
	bm_die("unknown command %s\n%s", cmd, usage);
}
