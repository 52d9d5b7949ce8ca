/* SPDX-License-Identifier: MIT */
/*
 * baselines.c - small, honest re-implementations of the designs hotmod is
 * measured against.  Each serves the same files (ROOT/mNN.so, the module of
 * bench/modules/bm.c), loads them the same way (a memfd copy, dlopen), calls
 * the same handler through a function pointer, and runs under the same
 * thread harness (harness.c).  None is handicapped: the table is the same
 * FNV-1a hash over "path" + ".so" that hotmod uses, no lock is held longer
 * than its design says, and the version a request holds is freed off-lock.
 *
 *  direct    the handler called through a plain function pointer: no lookup,
 *            no reference, no reload.  The limit.
 *  direct+atomic
 *            direct, plus one atomic increment and decrement of a per-module
 *            count around the call: the cheapest possible reference.
 *  codelock  one global mutex held across the lookup and the whole handler,
 *            so that code cannot be replaced under a running request:
 *            Graham Dumpleton's "codelock"
 *            proposal on the mod_python list, Oct 2004, which Nicolas
 *            Lehuen answers "effectively kills any multi-threaded" server.
 *  seed      the seed's two-level scheme as mod_python 3.3 shipped it
 *            (lib/python/mod_python/cache.py, donated by Nicolas Lehuen:
 *            Cache._get_entry, Cache._checkitem, FileCache.check): a global
 *            table mutex held for the lookup only; then the entry's mutex,
 *            held while stat() compares the file's mtime with the one it was
 *            built from, and while it is rebuilt when it changed; the module
 *            used after the entry lock is dropped, kept alive by a reference
 *            count (Python's, here an atomic count).
 *  rwlock    the textbook alternative (no single source: a map behind a
 *            pthread read-write lock, values reference-counted): readers
 *            take the read lock for the lookup and the increment; a reload
 *            would take the write lock to swap.
 */
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- loading a module, the same way for every baseline ----------------------- */

int bm_dl_load(const char *path, struct bm_dl *out)
{
	const struct hm_module_desc *d;
	struct stat st;
	char name[64];
	int fd, memfd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "hmbench: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((memfd = memfd_create("hmbench", MFD_CLOEXEC)) < 0) {
		fprintf(stderr, "hmbench: memfd_create: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	for (off_t off = 0; off < st.st_size;) {
		ssize_t n = sendfile(memfd, fd, &off, (size_t)(st.st_size - off));
		if (n <= 0) {
			fprintf(stderr, "hmbench: %s: sendfile: %s\n", path,
				n < 0 ? strerror(errno) : "short file");
			close(fd);
			close(memfd);
			return -1;
		}
	}
	close(fd);
	/* The name stays unique while memfd is open: closed only at unload. */
	snprintf(name, sizeof name, "/proc/self/fd/%d", memfd);
	if (!(out->dl = dlopen(name, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "hmbench: %s: dlopen: %s\n", path, dlerror());
		close(memfd);
		return -1;
	}
	d = dlsym(out->dl, HM_MODULE_SYMBOL);
	if (!d || d->abi != HM_ABI_VERSION || !d->handle) {
		fprintf(stderr, "hmbench: %s: no usable descriptor\n", path);
		dlclose(out->dl);
		close(memfd);
		return -1;
	}
	out->memfd = memfd;
	out->handle = d->handle;
	return 0;
}

void bm_dl_unload(struct bm_dl *m)
{
	dlclose(m->dl);
	close(m->memfd);
}

/* ---- a loaded version and its reference count -------------------------------- */

struct bm_ver {
	atomic_ulong refs;
	struct bm_dl dl;
};

static struct bm_ver *bm_ver_load(const char *path)
{
	struct bm_ver *v = malloc(sizeof *v);

	if (!v)
		return NULL;
	if (bm_dl_load(path, &v->dl) < 0) {
		free(v);
		return NULL;
	}
	atomic_init(&v->refs, 1); /* the entry's */
	return v;
}

static void bm_ver_put(struct bm_ver *v)
{
	/* acq_rel: the last putter sees every other user's accesses (as hm_put). */
	if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
		bm_dl_unload(&v->dl);
		free(v);
	}
}

/* ---- the table: the same hash and key comparison as hotmod's table.c ---------- */

#define BM_BUCKETS 128 /* hotmod's starts at 64 and grows: no advantage here */

struct bm_entry {
	struct bm_entry *next;
	uint64_t hash;
	size_t key_len;
	char key[16];   /* "m00.so" */
	char *file;     /* ROOT/m00.so, what the seed stats */
	/* seed: the entry's lock, protecting mtime and cur. */
	pthread_mutex_t lock;
	struct timespec mtime;
	uint64_t loads;
	/* seed: under lock; codelock: under the global lock; rwlock: under the
	 * write lock. */
	struct bm_ver *cur;
};

struct bm_table {
	struct bm_entry *buckets[BM_BUCKETS];
	struct bm_entry *entries;
	unsigned n;
};

static uint64_t bm_hash(uint64_t h, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define BM_HASH_INIT 0xcbf29ce484222325ull

static struct bm_entry *bm_table_find(struct bm_table *t, const char *path)
{
	size_t len = strlen(path);
	uint64_t h = bm_hash(bm_hash(BM_HASH_INIT, path, len), ".so", 3);

	for (struct bm_entry *e = t->buckets[h % BM_BUCKETS]; e; e = e->next)
		if (e->hash == h && e->key_len == len + 3 && memcmp(e->key, path, len) == 0 &&
		    memcmp(e->key + len, ".so", 3) == 0)
			return e;
	return NULL;
}

static int bm_table_init(struct bm_table *t, const struct bm_setup *s)
{
	memset(t, 0, sizeof *t);
	if (!(t->entries = calloc(s->nmods, sizeof *t->entries)))
		return -1;
	t->n = s->nmods;
	for (unsigned i = 0; i < s->nmods; i++) {
		struct bm_entry *e = &t->entries[i];
		struct stat st;

		e->key_len = (size_t)snprintf(e->key, sizeof e->key, "%s.so", s->paths[i]);
		e->hash = bm_hash(BM_HASH_INIT, e->key, e->key_len);
		if (asprintf(&e->file, "%s/%s", s->root, e->key) < 0)
			return -1;
		pthread_mutex_init(&e->lock, NULL);
		if (stat(e->file, &st) < 0 || !(e->cur = bm_ver_load(e->file)))
			return -1;
		e->mtime = st.st_mtim;
		e->loads = 1;
		e->next = t->buckets[e->hash % BM_BUCKETS];
		t->buckets[e->hash % BM_BUCKETS] = e;
	}
	return 0;
}

static void bm_table_free(struct bm_table *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		struct bm_entry *e = &t->entries[i];
		if (e->cur)
			bm_ver_put(e->cur);
		pthread_mutex_destroy(&e->lock);
		free(e->file);
	}
	free(t->entries);
}

static uint64_t bm_table_loads(struct bm_table *t)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < t->n; i++) {
		pthread_mutex_lock(&t->entries[i].lock);
		n += t->entries[i].loads;
		pthread_mutex_unlock(&t->entries[i].lock);
	}
	return n;
}

/* ---- direct --------------------------------------------------------------------- */

struct bm_counter {
	_Alignas(64) atomic_ulong n; /* one line per module, like a version's count */
};

struct bm_direct {
	unsigned n;
	struct bm_dl mods[BM_MAX_MODS];
	int (*fns[BM_MAX_MODS])(hm_ctx *);
	struct bm_counter refs[BM_MAX_MODS];
};

static void *bm_direct_open(const struct bm_setup *s)
{
	struct bm_direct *d = aligned_alloc(64, sizeof *d);
	char path[4096];

	if (!d)
		return NULL;
	memset(d, 0, sizeof *d);
	for (unsigned i = 0; i < s->nmods; i++) {
		snprintf(path, sizeof path, "%s/%s.so", s->root, s->paths[i]);
		if (bm_dl_load(path, &d->mods[i]) < 0)
			return NULL;
		d->fns[i] = d->mods[i].handle;
		d->n++;
	}
	return d;
}

static int bm_direct_request(void *st, unsigned idx)
{
	struct bm_direct *d = st;

	return d->fns[idx](NULL);
}

static int bm_direct_atomic_request(void *st, unsigned idx)
{
	struct bm_direct *d = st;
	int rc;

	atomic_fetch_add_explicit(&d->refs[idx].n, 1, memory_order_relaxed);
	rc = d->fns[idx](NULL);
	atomic_fetch_sub_explicit(&d->refs[idx].n, 1, memory_order_acq_rel);
	return rc;
}

static void bm_direct_close(void *st)
{
	struct bm_direct *d = st;

	for (unsigned i = 0; i < d->n; i++)
		bm_dl_unload(&d->mods[i]);
	free(d);
}

const struct bm_impl bm_direct = {
	.name = "direct",
	.about = "handler through a plain function pointer: the limit",
	.open = bm_direct_open,
	.request = bm_direct_request,
	.close = bm_direct_close,
};

const struct bm_impl bm_direct_atomic = {
	.name = "direct+atomic",
	.about = "direct plus one atomic increment/decrement pair on a per-module count",
	.open = bm_direct_open,
	.request = bm_direct_atomic_request,
	.close = bm_direct_close,
};

/* ---- codelock ------------------------------------------------------------------- */

struct bm_codelock {
	pthread_mutex_t lock; /* protects the table, its entries, and the code */
	struct bm_table t;
	const char *const *paths;
};

static void *bm_codelock_open(const struct bm_setup *s)
{
	struct bm_codelock *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->paths = s->paths;
	if (bm_table_init(&c->t, s) < 0)
		return NULL;
	return c;
}

static int bm_codelock_request(void *st, unsigned idx)
{
	struct bm_codelock *c = st;
	struct bm_entry *e;
	int rc = -1;

	pthread_mutex_lock(&c->lock);
	if ((e = bm_table_find(&c->t, c->paths[idx])) != NULL)
		rc = e->cur->dl.handle(NULL); /* no reload can run meanwhile */
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static void bm_codelock_close(void *st)
{
	struct bm_codelock *c = st;

	bm_table_free(&c->t);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const struct bm_impl bm_codelock = {
	.name = "codelock",
	.about = "one global mutex held across lookup and handler (the seed's warning)",
	.open = bm_codelock_open,
	.request = bm_codelock_request,
	.close = bm_codelock_close,
};

/* ---- seed (mod_python 3.3's cache.py) ---------------------------------------------- */

struct bm_seed {
	pthread_mutex_t lock; /* Cache._lock: protects the table (inserts) */
	struct bm_table t;
	const char *const *paths;
};

static void *bm_seed_open(const struct bm_setup *s)
{
	struct bm_seed *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->paths = s->paths;
	if (bm_table_init(&c->t, s) < 0)
		return NULL;
	return c;
}

static int bm_seed_request(void *st, unsigned idx)
{
	struct bm_seed *c = st;
	struct bm_ver *v, *old = NULL;
	struct bm_entry *e;
	struct stat sb;
	int rc;

	/* Cache._get_entry: the table lock, just for the lookup. */
	pthread_mutex_lock(&c->lock);
	e = bm_table_find(&c->t, c->paths[idx]);
	pthread_mutex_unlock(&c->lock);
	if (!e)
		return -1;

	/* Cache._checkitem: the entry lock around check() and build(). */
	pthread_mutex_lock(&e->lock);
	if (stat(e->file, &sb) < 0) { /* FileCache.check: stat(key).st_mtime */
		pthread_mutex_unlock(&e->lock);
		fprintf(stderr, "hmbench: seed: %s: %s\n", e->file, strerror(errno));
		return -1;
	}
	if (sb.st_mtim.tv_sec != e->mtime.tv_sec || sb.st_mtim.tv_nsec != e->mtime.tv_nsec) {
		/* Stale: build the new module under the entry lock. */
		if (!(v = bm_ver_load(e->file))) {
			pthread_mutex_unlock(&e->lock);
			return -1;
		}
		old = e->cur;
		e->cur = v;
		e->mtime = sb.st_mtim;
		e->loads++;
	}
	v = e->cur;
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&e->lock);
	/* The replaced module dies when its last request is done, off-lock. */
	if (old)
		bm_ver_put(old);

	rc = v->dl.handle(NULL);
	bm_ver_put(v);
	return rc;
}

static void bm_seed_close(void *st)
{
	struct bm_seed *c = st;

	bm_table_free(&c->t);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static uint64_t bm_seed_loads(void *st)
{
	return bm_table_loads(&((struct bm_seed *)st)->t);
}

const struct bm_impl bm_seed = {
	.name = "seed",
	.about = "mod_python 3.3 cache.py: table mutex, entry mutex around stat(), refcount",
	.open = bm_seed_open,
	.request = bm_seed_request,
	.close = bm_seed_close,
	.loads = bm_seed_loads,
};

/* ---- rwlock ---------------------------------------------------------------------- */

struct bm_rwlock {
	pthread_rwlock_t lock; /* protects the table and every entry's cur */
	struct bm_table t;
	const char *const *paths;
};

static void *bm_rwlock_open(const struct bm_setup *s)
{
	struct bm_rwlock *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	pthread_rwlock_init(&c->lock, NULL);
	c->paths = s->paths;
	if (bm_table_init(&c->t, s) < 0)
		return NULL;
	return c;
}

static int bm_rwlock_request(void *st, unsigned idx)
{
	struct bm_rwlock *c = st;
	struct bm_entry *e;
	struct bm_ver *v;
	int rc;

	pthread_rwlock_rdlock(&c->lock);
	if (!(e = bm_table_find(&c->t, c->paths[idx]))) {
		pthread_rwlock_unlock(&c->lock);
		return -1;
	}
	v = e->cur;
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	pthread_rwlock_unlock(&c->lock);
	rc = v->dl.handle(NULL);
	bm_ver_put(v);
	return rc;
}

static void bm_rwlock_close(void *st)
{
	struct bm_rwlock *c = st;

	bm_table_free(&c->t);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

const struct bm_impl bm_rwlock = {
	.name = "rwlock",
	.about = "table behind a pthread read-write lock, per-version refcount",
	.open = bm_rwlock_open,
	.request = bm_rwlock_request,
	.close = bm_rwlock_close,
};
