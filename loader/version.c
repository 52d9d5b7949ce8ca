/* SPDX-License-Identifier: MIT */
/*
 * version.c - one loaded version of a file: its memory (a type-stable slot
 * on the loader's live list), its load (copy, probe, dlopen, init) and
 * publication, its finalisation (fini, dlclose), and the public accessors.
 *
 * Finalisation runs on the loader's reaper thread (reaper.c), so the
 * request that puts the last reference on a stale version does not pay
 * for fini and dlclose; and only once no hm_dispatch() runs the version
 * any more: see hazard.c.
 */
#include "loader.h"
#include "hooks.h"
#include "probe.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/* A slot from the free list or the heap, not yet live; ver_lock free. */
static struct hm__version *hm__slot_get(hm_loader *l)
{
	struct hm__version *v;

	pthread_mutex_lock(&l->ver_lock);
	if ((v = l->free_slots) != NULL)
		l->free_slots = v->queue_next;
	pthread_mutex_unlock(&l->ver_lock);
	if (!v && (v = calloc(1, sizeof *v)) != NULL)
		atomic_init(&v->refs, 0);
	return v;
}

/*
 * Put v, whose entry, number and id are written, on the live list.  Only
 * then: hm_status_get() and hm_close() read those of every live version
 * under ver_lock, and the lock is what orders the writes before their
 * reads (a version listed first showed in the status with the entry and
 * number of the slot's last life).
 */
static void hm__slot_link(hm_loader *l, struct hm__version *v)
{
	pthread_mutex_lock(&l->ver_lock);
	v->live_prev = NULL;
	v->live_next = l->live;
	if (l->live)
		l->live->live_prev = v;
	l->live = v;
	l->nlive++;
	pthread_mutex_unlock(&l->ver_lock);
}

/* Back to the free list.  refs is 0 and stays 0 until the slot is reused. */
static void hm__slot_put(hm_loader *l, struct hm__version *v)
{
	pthread_mutex_lock(&l->ver_lock);
	if (v->live_prev)
		v->live_prev->live_next = v->live_next;
	else
		l->live = v->live_next;
	if (v->live_next)
		v->live_next->live_prev = v->live_prev;
	v->queue_next = l->free_slots;
	l->free_slots = v;
	if (--l->nlive == 0)
		pthread_cond_broadcast(&l->ver_cond);
	pthread_mutex_unlock(&l->ver_lock);
}

static void hm__init_ctx(hm_ctx *ctx, struct hm__version *v, enum hm__phase phase)
{
	bool global = v->entry->is_global;

	*ctx = (hm_ctx){
		.loader = v->entry->loader,
		.version = global ? NULL : v,
		.global = global ? v : v->global,
		.layer = global ? HM_LAYER_GLOBAL : HM_LAYER_MODULE,
		.phase = phase,
	};
}

/*
 * Do two sealed memfds of size bytes hold the same bytes?  Read, not
 * mapped: each munmap() would interrupt every CPU running a thread of the
 * process (a TLB shootdown), which costs more than the copy in a VM.  Any
 * failure answers no: the file is then loaded as new.
 */
static bool hm__same_bytes(int a, int b, size_t size)
{
	enum { CHUNK = 64 * 1024 };
	char *buf = malloc(2 * CHUNK);
	bool same = buf != NULL;

	for (size_t off = 0; same && off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? size - off : CHUNK;
		same = pread(a, buf, n, (off_t)off) == (ssize_t)n &&
		       pread(b, buf + CHUNK, n, (off_t)off) == (ssize_t)n &&
		       memcmp(buf, buf + CHUNK, n) == 0;
	}
	free(buf);
	return same;
}

/*
 * The embedder's request kind against the module's (kind: NULL when it
 * declares none): HM_EKIND for a module built for another kind, and for
 * one that declares none where the embedder requires a kind.
 */
static int hm__kind_check(const hm_loader *l, const char *key, const char *kind)
{
	if (kind && l->request_kind && strcmp(kind, l->request_kind) != 0)
		return hm__fail(HM_EKIND, "%s: built for request kind '%s', this loader "
					  "serves '%s'", key, kind, l->request_kind);
	if (!kind && (l->flags & HM_OPEN_REQUIRE_KIND)) {
		if (l->request_kind)
			return hm__fail(HM_EKIND, "%s: declares no request kind, and this "
						  "loader serves only modules built for '%s' "
						  "(HM_MODULE(.request_kind = ...))", key,
				l->request_kind);
		return hm__fail(HM_EKIND, "%s: declares no request kind, and this loader "
					  "requires one (HM_MODULE(.request_kind = ...))", key);
	}
	return 0;
}

/* Two versions' bytes, and the global they bind to, are the same. */
static bool hm__same_version(const struct hm__version *prev, const struct hm__version *global,
	int memfd, uint64_t bytes)
{
	return prev && prev->global == global && prev->bytes == bytes &&
	       hm__same_bytes(memfd, prev->memfd, (size_t)bytes);
}

/*
 * The embedder's say on e's bytes in *memfd (hm_options.admit), before
 * anything of them runs: 0 with their digest, and *memfd and *bytes
 * replaced when it gave a substitute (*substitute set); HM_EREFUSED.
 */
static int hm__admit(struct hm__entry *e, int *memfd, uint64_t *bytes,
	unsigned char digest[HM_DIGEST_SIZE], bool *substitute)
{
	hm_loader *l = e->loader;
	struct hm_admission a;
	int rc, sub;

	if (hm__digest_fd(*memfd, (off_t)*bytes, digest) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: cannot read its copy", e->key);
	a = (struct hm_admission){.path = e->key, .digest = digest, .fd = *memfd,
		.size = *bytes, .substitute_fd = -1};
	rc = l->admit(l->admit_arg, &a);
	sub = a.substitute_fd;
	if (rc < 0) {
		if (sub >= 0)
			close(sub);
		return hm__fail(HM_EREFUSED, "%s: refused by the embedder (admit returned "
					     "%d)", e->key, rc);
	}
	if (sub < 0)
		return 0;
	int mfd;
	uint64_t n;
	rc = hm__copy_fd(l, sub, e->key, &mfd, &n);
	close(sub);
	if (rc < 0)
		return rc;
	if (hm__digest_fd(mfd, (off_t)n, digest) < 0) {
		close(mfd);
		return hm__fail_errno(errno, HM_ESYS, "%s: cannot read the embedder's "
						      "substitute", e->key);
	}
	if (a.substitute_digest &&
	    memcmp(a.substitute_digest, digest, HM_DIGEST_SIZE) != 0) {
		close(mfd);
		return hm__fail(HM_EREFUSED, "%s: the embedder's substitute does not hold "
					     "the build it named (another SHA-256)", e->key);
	}
	close(*memfd);
	*memfd = mfd;
	*bytes = n;
	*substitute = true;
	return 0;
}

int hm__version_load(struct hm__entry *e, struct hm__version *global,
	const struct hm__fileid *gid, struct hm__version *prev, bool readmit,
	struct hm__version **out)
{
	hm_loader *l = e->loader;
	struct hm__fileid id;
	struct hm__hooks hooks;
	struct hm__version *v;
	const char *kind;
	void *dl = NULL;
	int memfd = -1, rc;
	unsigned char digest[HM_DIGEST_SIZE];
	bool have_digest = false, substitute = false;
	uint64_t bytes;
	hm_ctx ctx;

	int64_t t0 = hm__now(), t1, t2;

	rc = hm__copy_module(l, e->key, e->is_global ? NULL : e->global_key,
		global ? gid : NULL, &memfd, &id);
	if (rc != 0)
		return rc;
	bytes = (uint64_t)id.size;
	/* touch, chmod, or the same build copied again: nothing to load. */
	if (!readmit && hm__same_version(prev, global, memfd, bytes)) {
		close(memfd);
		return HM__SAME;
	}
	if (l->admit) {
		if ((rc = hm__admit(e, &memfd, &bytes, digest, &substitute)) < 0)
			goto fail;
		have_digest = true;
		/* What admit let through may be what serves already. */
		if ((readmit || substitute) && hm__same_version(prev, global, memfd, bytes)) {
			close(memfd);
			return HM__SAME;
		}
	}
	t1 = hm__now();
	if ((l->flags & HM_OPEN_PROBE) && (rc = hm__probe(l, memfd, e->key)) < 0)
		goto fail;
	if ((rc = hm__dl_open(&memfd, e->key, &dl)) < 0)
		goto fail;
	if ((rc = hm__dl_hooks(dl, memfd, e->key, &hooks, &kind)) < 0 ||
	    (rc = hm__kind_check(l, e->key, kind)) < 0)
		goto fail;
	t2 = hm__now();
	if ((v = hm__slot_get(l)) == NULL) {
		rc = hm__fail(HM_ENOMEM, "%s: out of memory", e->key);
		goto fail;
	}
	/* Only the thread in e->loading_by gets here: next_number is ours. */
	v->entry = e;
	v->global = global;
	v->hooks = hooks;
	v->plain = !global && !hooks.prepare && !hooks.commit && !hooks.rollback &&
		   !hooks.release && hooks.handle;
	atomic_store_explicit(&v->deferred, false, memory_order_relaxed);
	v->quiesce = NULL;
	v->state = NULL;
	v->dl = dl;
	v->memfd = memfd;
	v->bytes = bytes;
	v->substitute = substitute;
	v->number = e->next_number++;
	v->id = id;
	v->adopted = false;
	v->heir = NULL;
	if (have_digest) {
		memcpy(v->digest, digest, sizeof digest);
		atomic_store_explicit(&v->digest_state, 2, memory_order_relaxed);
	} else {
		atomic_store_explicit(&v->digest_state, 0, memory_order_relaxed);
	}
	if (global)
		atomic_fetch_add_explicit(&global->refs, 1, memory_order_relaxed);
	hm__slot_link(l, v);

	hm__init_ctx(&ctx, v, HM__PHASE_INIT);
	ctx.prev = prev;
	rc = hm__run_init(&ctx, v->hooks.init);
	v->copy_ns = (uint64_t)(t1 - t0);
	v->dlopen_ns = (uint64_t)(t2 - t1);
	v->init_ns = (uint64_t)(hm__now() - t2);
	if (rc < 0) {
		if (prev)
			prev->adopted = false; /* what it took is not taken */
		rc = hm__fail(HM_EINIT, "%s version %llu: init returned %d", e->key,
			(unsigned long long)v->number, rc);
		e->next_number--; /* numbers count versions that served */
		hm__slot_put(l, v);
		if (global)
			hm_put(global);
		goto fail;
	}
	/* No release needed: v is published later by a release exchange. */
	atomic_store_explicit(&v->refs, 1, memory_order_relaxed);
	if (prev && prev->adopted) {
		/* prev's requests still use the state: v's fini must wait for
		 * prev's.  The reference is put when prev is finalised. */
		atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
		prev->heir = v;
	}
	*out = v;
	return 0;
fail:
	if (dl) {
		struct hm__err why; /* unloading may fail; keep the reason */
		hm__err_save(&why);
		hm__dl_close(e, 0, dl, memfd);
		hm__err_restore(&why);
	} else {
		close(memfd);
	}
	return rc;
}

void hm__version_finalise(struct hm__version *v)
{
	hm_loader *l = v->entry->loader;
	struct hm__entry *e = v->entry;
	struct hm__version *global = v->global, *heir = v->heir;
	hm_ctx ctx;

	free(v->quiesce);
	v->quiesce = NULL;
	hm__init_ctx(&ctx, v, HM__PHASE_FINI);
	hm__run_fini(&ctx, v->hooks.fini);
	if (hm__dl_close(v->entry, v->number, v->dl, v->memfd))
		hm__log(l, HM_LOG_INFO, "%s version %llu unloaded", v->entry->key,
			(unsigned long long)v->number);
	/* That dlclose may have unloaded objects pinned before. */
	hm__pins_sweep(l, false);
	hm__slot_put(l, v);
	hm__entry_version_gone(e); /* last use of e: it may be freed now */
	/* After the module: a global outlives every version bound to it, and
	 * an heir every version whose state it adopted. */
	hm_put(heir);
	hm_put(global);
}

void hm__versions_free(hm_loader *l)
{
	struct hm__version *v;

	while ((v = l->free_slots) != NULL) {
		l->free_slots = v->queue_next;
		free(v);
	}
}

void hm__put_last(struct hm__version *v)
{
	/* In a child after fork() there is no reaper and the locks may be
	 * held by threads that do not exist: leak the copy instead. */
	if (!hm__forked(v->entry->loader))
		hm__version_retire(v);
}

void hm_put(hm_module *v)
{
	if (v)
		hm__put(v);
}

const char *hm_module_path(const hm_module *v)
{
	return v ? v->entry->key : NULL;
}

uint64_t hm_module_version(const hm_module *v)
{
	return v ? v->number : 0;
}

void *hm_module_symbol(const hm_module *v, const char *name)
{
	if (!v || !name) {
		hm__fail(HM_EINVAL, "hm_module_symbol: NULL argument");
		return NULL;
	}
	void *sym = dlsym(v->dl, name);
	if (!sym)
		hm__fail(HM_ENOENT, "%s: no symbol '%s'", v->entry->key, name);
	return sym;
}
