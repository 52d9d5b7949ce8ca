/* SPDX-License-Identifier: MIT */
/*
 * impl_hotmod.c - libhotmod under the harness, used the way an embedder
 * uses it: hm_open() with the defaults plus preloading, then per request
 * hm_dispatch() (hm_get, hm_call, hm_put).
 *
 *  hotmod          hm_dispatch(): get, the hook chain, put.  Watching with
 *                  inotify (the default): the request path never stats.
 *  hotmod-getput   hm_get() and hm_put() alone, no handler call: the cost of
 *                  the reference.
 *  hotmod-stat     hm_dispatch() with HM_WATCH_STAT and the default 1 s
 *                  check interval (what NFS gets): one coarse clock read
 *                  per request, a stat per module per second.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Errors are printed (on stderr: run.sh shows them).  Warnings are not: the
 * pinned versions of the memory workload are one each, and expected.
 */
static void bm_log(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level == HM_LOG_ERROR)
		fprintf(stderr, "hmbench: hotmod: %s\n", msg);
}

hm_loader *bm_hotmod_open(const char *root, int watch)
{
	struct hm_options o;
	hm_loader *l;

	hm_options_init(&o);
	o.root = root;
	o.watch = watch;
	o.flags = HM_OPEN_PRELOAD;
	o.log = bm_log;
	if (hm_open(&l, &o) < 0)
		bm_die("hm_open %s: %s", root, hm_errmsg());
	return l;
}

struct bm_hm {
	hm_loader *l;
	const char *const *paths;
};

static void *bm_hm_open_mode(const struct bm_setup *s, int watch)
{
	struct bm_hm *h = calloc(1, sizeof *h);
	hm_module *m;

	if (!h)
		return NULL;
	h->l = bm_hotmod_open(s->root, watch);
	h->paths = s->paths;
	/* Preloaded: check that every module is there. */
	for (unsigned i = 0; i < s->nmods; i++) {
		if (hm_get(h->l, s->paths[i], &m) < 0)
			bm_die("hotmod: %s: %s", s->paths[i], hm_errmsg());
		hm_put(m);
	}
	return h;
}

static void *bm_hm_open(const struct bm_setup *s)
{
	return bm_hm_open_mode(s, HM_WATCH_AUTO);
}

static void *bm_hm_open_stat(const struct bm_setup *s)
{
	return bm_hm_open_mode(s, HM_WATCH_STAT);
}

static int bm_hm_request(void *st, unsigned idx)
{
	struct bm_hm *h = st;

	return hm_dispatch(h->l, h->paths[idx], NULL);
}

static int bm_hm_getput(void *st, unsigned idx)
{
	struct bm_hm *h = st;
	hm_module *m;
	int rc;

	if ((rc = hm_get(h->l, h->paths[idx], &m)) < 0)
		return rc;
	hm_put(m);
	return 0;
}

static void bm_hm_close(void *st)
{
	struct bm_hm *h = st;

	if (hm_close(h->l, 10000) < 0)
		bm_die("hm_close: %s", hm_errmsg());
	free(h);
}

static uint64_t bm_hm_loads(void *st)
{
	struct bm_hm *h = st;
	struct hm_status *s;
	uint64_t n = 0;

	if (hm_status_get(h->l, &s) < 0)
		bm_die("hm_status_get: %s", hm_errmsg());
	for (size_t i = 0; i < s->nmodules; i++)
		n += s->modules[i].loads;
	hm_status_free(s);
	return n;
}

hm_loader *bm_hotmod_loader(void *st)
{
	return ((struct bm_hm *)st)->l;
}

const struct bm_impl bm_hotmod = {
	.name = "hotmod",
	.about = "hm_dispatch(): hm_get, hm_call (hook chain), hm_put; inotify",
	.open = bm_hm_open,
	.request = bm_hm_request,
	.close = bm_hm_close,
	.loads = bm_hm_loads,
};

const struct bm_impl bm_hotmod_getput = {
	.name = "hotmod-getput",
	.about = "hm_get + hm_put only, no handler call: the reference alone",
	.open = bm_hm_open,
	.request = bm_hm_getput,
	.close = bm_hm_close,
	.loads = bm_hm_loads,
};

const struct bm_impl bm_hotmod_stat = {
	.name = "hotmod-stat",
	.about = "hm_dispatch() in stat mode, 1 s check interval (NFS's mode)",
	.open = bm_hm_open_stat,
	.request = bm_hm_request,
	.close = bm_hm_close,
	.loads = bm_hm_loads,
};

const struct bm_impl *bm_impl_find(const char *name)
{
	static const struct bm_impl *const all[] = {&bm_direct, &bm_direct_atomic,
		&bm_hotmod, &bm_hotmod_getput, &bm_hotmod_stat, &bm_codelock, &bm_seed,
		&bm_rwlock};

	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}
