/*
 * request.c - the request path: hm_get(), hm_call(), hm_dispatch().
 *
 * For a module that is loaded and current this takes no lock: a lock-free
 * table lookup (table.c), one compare-and-swap on the version's reference
 * count, one re-read of the entry's current pointer, the hooks, and one
 * decrement.  hm_dispatch() does without the two atomic operations: it
 * holds the version in a hazard slot of its thread (hazard_linux.c).  In
 * stat mode a request also reads the coarse clock, and stats the file when
 * the check interval has passed.
 *
 * Everything here is inline in the exported functions, so that
 * hm_dispatch() is one function calling strlen() and the hooks: no PLT
 * calls between the library's own exported names, no argument checked
 * twice.  What the fast path cannot serve goes to loader.c
 * (hm__get_miss) and, for modules with more than a handler, dispatch.c
 * (hm__chain).
 */
#include "internal.h"

#include "fault.h" /* last: see fault.h */

/*
 * The entry a request path names, if it is a module that has one (a global
 * module's entry is NULL here: hm__get_miss refuses its path), after its
 * stat check when one is due.  *path and *len: the path as looked up.
 */
__attribute__((always_inline)) static inline struct hm__entry *hm__request_entry(
	hm_loader *l, const char **path, size_t *len)
{
	struct hm__entry *e = hm__find_request(l, path, len);

	if (!e || e->is_global)
		return NULL;
	if (l->check_ns >= 0 &&
	    hm__now_coarse() >= atomic_load_explicit(&e->next_check, memory_order_relaxed))
		hm__check_on_request(e);
	return e;
}

/* A reference to e's current version (e may be NULL), else hm__get_miss. */
__attribute__((always_inline)) static inline int hm__get_entry(hm_loader *l,
	struct hm__entry *e, const char *path, size_t len, struct hm_module **out)
{
	/* acquire: pairs with the exchange that published v */
	struct hm_module *v = e ? atomic_load_explicit(&e->current, memory_order_acquire) : NULL;

	if (v && hm__version_tryget(v)) {
		/* v may have been recycled for another version between the load
		 * and the CAS: keep it only if it is still current. */
		if (atomic_load_explicit(&e->current, memory_order_acquire) == v) {
			*out = v;
			return 0;
		}
		hm__put(v);
	}
	return hm__get_miss(l, path, len, e, out);
}

/* hm_call() once its arguments and the fork are checked; l is mod's. */
__attribute__((always_inline)) static inline int hm__call(hm_loader *l,
	struct hm_module *mod, void *request)
{
	struct hm__thread *self = hm__self();
	hm_ctx ctx = {
		.loader = l,
		.request = request,
		.mod = mod,
		.glob = mod->global,
		.layer = HM_LAYER_MODULE,
		.phase = HM__PHASE_CALL,
	};
	int rc;

	if (self->depth >= l->max_depth)
		return hm__fail(HM_ELOOP, "%s: more than %d nested calls", mod->entry->key,
			l->max_depth);
	hm__enter(&ctx, self);
	if (mod->plain) {
		/* No global, no hook but handle: the chain is the handler. */
		if ((rc = mod->hooks.handle(&ctx)) < 0)
			rc = hm__hook_failed(&ctx, "handle", rc);
	} else {
		rc = hm__chain(&ctx);
	}
	hm__leave(&ctx, self);
	return rc;
}

int hm_get(hm_loader *l, const char *path, hm_module **out)
{
	struct hm__entry *e;
	size_t len;

	if (!l || !path || !out)
		return hm__fail(HM_EINVAL, "hm_get: NULL argument");
	if (hm__forked(l))
		return hm__fork_error(l);
	e = hm__request_entry(l, &path, &len);
	return hm__get_entry(l, e, path, len, out);
}

int hm_call(hm_module *mod, void *request)
{
	if (!mod)
		return hm__fail(HM_EINVAL, "hm_call: NULL module");
	if (hm__forked(mod->entry->loader))
		return hm__fork_error(mod->entry->loader);
	return hm__call(mod->entry->loader, mod, request);
}

/*
 * hm_dispatch() of e's current version, protected by this thread's hazard
 * slot instead of a reference (hazard_linux.c).  Returns false, having
 * done nothing, when it cannot: then hm_dispatch() takes a reference the
 * usual way.
 */
__attribute__((always_inline)) static inline bool hm__dispatch_hazard(hm_loader *l,
	struct hm__entry *e, void *request, int *rc)
{
	struct hm__thread *self = hm__self();
	struct hm__hazards *hz = self->hz;
	struct hm_module *v;

	if (self->depth >= HM__HAZARDS)
		return false;
	if (!hz && (self->hz_failed || !(hz = hm__hazards_attach(self))))
		return false;
	/* acquire: pairs with the exchange that published v */
	v = atomic_load_explicit(&e->current, memory_order_acquire);
	if (!v)
		return false;
	_Atomic(struct hm_module *) *slot = &hz->slot[self->depth];
	atomic_store_explicit(slot, v, memory_order_relaxed);
	/*
	 * The store above must be visible before the re-check below reads:
	 * a store-load order no acquire or release gives.  Here only the
	 * compiler is kept from reordering; the reaper's membarrier() before
	 * it scans the slots is the fence's other, expensive half.
	 */
	atomic_signal_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&e->current, memory_order_acquire) != v) {
		atomic_store_explicit(slot, NULL, memory_order_relaxed);
		return false;
	}
	*rc = hm__call(l, v, request);
	/* release: the reaper that reads NULL here may finalise v */
	atomic_store_explicit(slot, NULL, memory_order_release);
	atomic_signal_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&v->deferred, memory_order_relaxed))
		hm__hazard_wake(l);
	return true;
}

int hm_dispatch(hm_loader *l, const char *path, void *request)
{
	struct hm__entry *e;
	hm_module *mod;
	size_t len;
	int rc;

	if (!l || !path)
		return hm__fail(HM_EINVAL, "hm_dispatch: NULL argument");
	if (hm__forked(l))
		return hm__fork_error(l);
	/* Looked up once, whichever way the version is then held. */
	e = hm__request_entry(l, &path, &len);
	if (e && hm__dispatch_hazard(l, e, request, &rc))
		return rc;
	if ((rc = hm__get_entry(l, e, path, len, &mod)) < 0)
		return rc;
	rc = hm__call(l, mod, request);
	hm__put(mod);
	return rc;
}
