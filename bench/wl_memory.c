/* SPDX-License-Identifier: MIT */
/*
 * wl_memory.c - workload 6: what reloading leaves behind.
 *
 * A C module is reloaded many times (rename of a new build, a request
 * answered by each version, the old one unloaded by the reaper); the
 * process's resident memory, open descriptors and mappings must come back
 * to where they were.  Then a C++ module that dlclose() cannot unload
 * (bench/modules/pinned.cpp: a thread_local with a destructor, touched by
 * the request thread, which outlives every version) is reloaded: each version
 * stays mapped, and the loader must report it as pinned.  What one pinned
 * version costs is printed.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bm_footprint {
	long rss_kib;
	int fds, maps;
};

static void bm_footprint(struct bm_footprint *f)
{
	f->rss_kib = bm_rss_kib();
	f->fds = bm_count_fds();
	f->maps = bm_count_maps();
}

struct bm_tree {
	char *root, *stagedir;
	char target[4096], stage[4096];
	void *data[2];
	size_t len[2];
	hm_loader *l;
	struct bm_live *live; /* the request thread: outlives every version */
	unsigned published;
};

static void bm_tree_open(struct bm_tree *t, const char *moddir, const char *base)
{
	char path[4096];

	t->root = bm_mkdtemp("mem");
	t->stagedir = bm_mkdtemp("stage");
	snprintf(path, sizeof path, "%s/%s_a.so", moddir, base);
	t->data[0] = bm_read_file(path, &t->len[0]);
	snprintf(path, sizeof path, "%s/%s_b.so", moddir, base);
	t->data[1] = bm_read_file(path, &t->len[1]);
	snprintf(t->target, sizeof t->target, "%s/m00.so", t->root);
	snprintf(t->stage, sizeof t->stage, "%s/m00.so", t->stagedir);
	if (bm_write_file(t->target, t->data[0], t->len[0]) < 0)
		bm_die("%s: %s", t->target, strerror(errno));
	t->l = bm_hotmod_open(t->root, HM_WATCH_INOTIFY);
	t->published = 0;
	if (hm_dispatch(t->l, "m00", NULL) != 1)
		bm_die("m00: %s", hm_errmsg());
	t->live = bm_live_start(t->l);
}

/* One reload, answered by the request thread from the new version. */
static void bm_tree_reload(struct bm_tree *t)
{
	int which = (int)(++t->published % 2);
	int64_t t0, t1;

	bm_publish_and_wait(t->live, t->stage, t->target, t->data[which], t->len[which],
		which + 1, &t0, &t1);
}

static void bm_tree_close(struct bm_tree *t)
{
	bm_live_stop(t->live);
	if (hm_close(t->l, 10000) < 0)
		bm_die("hm_close: %s", hm_errmsg());
	bm_rmtree(t->root);
	bm_rmtree(t->stagedir);
	free(t->root);
	free(t->stagedir);
	free(t->data[0]);
	free(t->data[1]);
}

static void bm_status_counts(hm_loader *l, uint64_t *loads, uint64_t *pinned,
	uint64_t *mod_pinned)
{
	struct hm_status *s;
	const struct hm_module_status *ms;

	if (hm_status_get(l, &s) < 0)
		bm_die("hm_status_get: %s", hm_errmsg());
	if (!(ms = bm_find_status(s, "m00.so")))
		bm_die("no status for m00.so");
	*loads = ms->loads;
	*mod_pinned = ms->pinned;
	*pinned = s->pinned;
	hm_status_free(s);
}

int bm_wl_memory(const struct bm_opts *o)
{
	struct bm_footprint f0, f1, f2, p0, p1;
	unsigned warm = 50, n = o->count, npin = o->quick ? 20 : 200;
	uint64_t loads, pinned, mod_pinned;
	struct bm_tree t;
	int64_t t0;

	/* The C module. */
	bm_tree_open(&t, o->moddir, "empty");
	bm_footprint(&f0);
	for (unsigned i = 0; i < warm; i++)
		bm_tree_reload(&t);
	bm_wait_reaped(t.l, 1);
	bm_footprint(&f1);
	t0 = bm_now();
	for (unsigned i = 0; i < n; i++)
		bm_tree_reload(&t);
	bm_wait_reaped(t.l, 1);
	double secs = (double)(bm_now() - t0) / 1e9;
	bm_footprint(&f2);
	bm_status_counts(t.l, &loads, &pinned, &mod_pinned);
	bm_tree_close(&t);

	printf("\n### Memory: %u reload cycles of a C module (%.1f s, %.0f reloads/s)\n\n",
		n, secs, n / secs);
	printf("Each cycle: a new %zu-byte build renamed over the file, a request "
	       "answered by it, the old version unloaded.  Baseline: after the first load "
	       "and %u warm-up cycles.\n\n", t.len[1], warm);
	printf("| | after first load | after warm-up | after %u cycles | growth |\n"
	       "|---|---:|---:|---:|---:|\n", n);
	printf("| RSS (KiB) | %ld | %ld | %ld | %+ld |\n", f0.rss_kib, f1.rss_kib, f2.rss_kib,
		f2.rss_kib - f1.rss_kib);
	printf("| open descriptors | %d | %d | %d | %+d |\n", f0.fds, f1.fds, f2.fds,
		f2.fds - f1.fds);
	printf("| /proc/self/maps entries | %d | %d | %d | %+d |\n", f0.maps, f1.maps,
		f2.maps, f2.maps - f1.maps);
	printf("\nStatus: %llu versions loaded, %llu pinned.\n\n",
		(unsigned long long)loads, (unsigned long long)pinned);
	printf("- Goal, RSS growth <= 1 MB: %+ld KiB (%+ld KiB from the first load): "
	       "**%s**.\n", f2.rss_kib - f1.rss_kib, f2.rss_kib - f0.rss_kib,
		f2.rss_kib - f1.rss_kib <= 1024 ? "met" : "MISSED");
	printf("- Goal, descriptors and mappings back where they started: %+d, %+d: "
	       "**%s**.\n", f2.fds - f1.fds, f2.maps - f1.maps,
		f2.fds == f1.fds && f2.maps == f1.maps ? "met" : "MISSED");

	/* The C++ module that stays. */
	bm_tree_open(&t, o->moddir, "pinned");
	bm_tree_reload(&t); /* libstdc++ and the TLS machinery are in */
	bm_wait_reaped(t.l, 1);
	bm_footprint(&p0);
	uint64_t pinned0, l0, mp0;
	bm_status_counts(t.l, &l0, &pinned0, &mp0);
	for (unsigned i = 0; i < npin; i++)
		bm_tree_reload(&t);
	bm_wait_reaped(t.l, 1);
	bm_footprint(&p1);
	bm_status_counts(t.l, &loads, &pinned, &mod_pinned);
	bm_tree_close(&t);

	printf("\n### Memory: a C++ module that cannot be unloaded (%u reloads)\n\n", npin);
	printf("A thread_local with a destructor, touched by a thread that outlives "
	       "every version: glibc keeps each version mapped.\n\n");
	printf("| per pinned version | RSS (KiB) | descriptors | maps entries |\n"
	       "|---|---:|---:|---:|\n");
	printf("| cost | %.1f | %.2f | %.2f |\n", (double)(p1.rss_kib - p0.rss_kib) / npin,
		(double)(p1.fds - p0.fds) / npin, (double)(p1.maps - p0.maps) / npin);
	printf("\n- Status reports them pinned: %llu of %u replaced versions (module "
	       "m00.so: %llu): **%s**.\n", (unsigned long long)(pinned - pinned0), npin,
		(unsigned long long)(mod_pinned - mp0),
		pinned - pinned0 == npin ? "yes" : "NO");
	printf("- At vm.max_map_count = 65530 a process holds about %.0f such versions.\n",
		p1.maps > p0.maps ? 65530.0 * npin / (double)(p1.maps - p0.maps) : 0.0);
	return 0;
}
