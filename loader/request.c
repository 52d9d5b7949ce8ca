/* SPDX-License-Identifier: MIT */
/*
 * request.c - the request path: hm_get(), hm_call(), hm_dispatch().
 *
 * For a module that is loaded and current this takes no lock: a lock-free
 * table lookup (table.c) inside the thread's lookup window (two stores to
 * its own record: hazard.h), one compare-and-swap on the version's
 * reference count, one re-read of the entry's current pointer, the hooks,
 * and one decrement.  hm_dispatch() does without the two atomic operations: it
 * holds the version in a hazard slot of its thread (hazard.c).  In
 * stat mode a request also reads the coarse clock, and stats the file when
 * the check interval has passed.
 *
 * Everything here is inline in the exported functions, so that
 * hm_dispatch() is one function calling strlen() and the hooks: no PLT
 * calls between the library's own exported names, no argument checked
 * twice.  What the fast path cannot serve goes to miss.c
 * (hm__get_miss) and, for modules with more than a handler, hooks.c
 * (hm__chain).
 */
#include "loader.h"
#include "hooks.h"

#include "fault.h" /* last: see fault.h */

/*
 * The entry a request path names, if it is a module that has one (a global
 * module's entry is NULL here: hm__get_miss refuses its path); *check: its
 * stat check is due (then it takes the slow path, which looks first).
 * Inside the lookup window.
 */
__attribute__((always_inline)) static inline struct hm__entry *hm__request_entry(
	hm_loader *l, const char *path, size_t len, bool *check)
{
	struct hm__entry *e = hm__find_request(l, path, len);

	if (!e || e->is_global)
		return NULL;
	*check = l->check_ns >= 0 &&
		 hm__now_coarse() >= atomic_load_explicit(&e->next_check, memory_order_relaxed);
	return e;
}

/*
 * A reference to e's current version in *out, if it has one; in the
 * window.  Otherwise *out is NULL, or a version that was current but no
 * longer is, for the caller to put once the window is closed (it may be
 * the last reference, and the last put may run fini).
 */
__attribute__((always_inline)) static inline bool hm__get_current(struct hm__entry *e,
	struct hm__version **out)
{
	/* acquire: pairs with the exchange that published v */
	struct hm__version *v = atomic_load_explicit(&e->current, memory_order_acquire);

	*out = NULL;
	if (v && hm__version_tryget(v)) {
		*out = v;
		/* v may have been recycled for another version between the load
		 * and the CAS: keep it only if it is still current. */
		return atomic_load_explicit(&e->current, memory_order_acquire) == v;
	}
	return false;
}

/* The slow path: leave the window holding e (may be NULL), put stale (may
 * be NULL, see hm__get_current), then load, check or refuse (miss.c). */
__attribute__((always_inline)) static inline int hm__get_slow_path(hm_loader *l,
	struct hm__hazards *w, struct hm__entry *e, struct hm__version *stale,
	const char *path, size_t len, bool check, struct hm__version **out)
{
	if (e)
		hm__entry_hold(e);
	hm__window_close(w);
	if (stale)
		hm__put(stale);
	return hm__get_miss(l, path, len, e, check, out);
}

/* hm_call() once its arguments and the fork are checked; l is mod's. */
__attribute__((always_inline)) static inline int hm__call(hm_loader *l,
	struct hm__version *mod, void *request)
{
	struct hm__thread *self = hm__self();
	hm_ctx ctx = {
		.loader = l,
		.request = request,
		.version = mod,
		.global = mod->global,
		.layer = HM_LAYER_MODULE,
		.hook = HM__HOOK_HANDLE,
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
			rc = hm__hook_failed(&ctx, rc);
	} else {
		rc = hm__chain(&ctx);
	}
	hm__leave(&ctx, self);
	if (__builtin_expect(ctx.locks != NULL, 0))
		rc = hm__locks_end(&ctx, rc); /* the request's outermost call: it ends */
	return rc;
}

int hm_get(hm_loader *l, const char *path, hm_module **out)
{
	struct hm__version *v, *stale = NULL;
	struct hm__hazards *w;
	struct hm__entry *e;
	bool check = false;
	size_t len;
	int rc;

	if ((rc = hm__api_check(l, path, out, "hm_get", false)) != 0)
		return rc;
	if (*path == '/')
		path++;
	len = strlen(path);
	w = hm__window_open(hm__self());
	e = hm__request_entry(l, path, len, &check);
	if (e && !check) {
		if (hm__get_current(e, &v)) {
			hm__window_close(w);
			*out = v;
			return 0;
		}
		stale = v;
	}
	return hm__get_slow_path(l, w, e, stale, path, len, check, out);
}

int hm_call(hm_module *mod, void *request)
{
	int rc;

	if ((rc = hm__api_check(mod ? mod->entry->loader : NULL, mod, mod, "hm_call", false)) != 0)
		return rc;
	return hm__call(mod->entry->loader, mod, request);
}

/*
 * hm_dispatch() of e's current version, protected by this thread's hazard
 * slot instead of a reference (hazard.c).  Returns false, having
 * done nothing, when it cannot: then hm_dispatch() takes a reference the
 * usual way.  Closes the lookup window w once v is safe in the slot.
 */
__attribute__((always_inline)) static inline bool hm__dispatch_hazard(hm_loader *l,
	struct hm__thread *self, struct hm__hazards *w, struct hm__entry *e, void *request,
	int *rc)
{
	struct hm__hazards *hz = self->hz; /* attached by hm__window_open */
	struct hm__version *v;

	if (self->depth >= HM__HAZARDS || !hz)
		return false;
	/* acquire: pairs with the exchange that published v */
	v = atomic_load_explicit(&e->current, memory_order_acquire);
	if (!v)
		return false;
	_Atomic(struct hm__version *) *slot = &hz->slot[self->depth];
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
	/* v is safe in the slot, and keeps its entry (e->versions): the
	 * window can close before the hooks run. */
	hm__window_close(w);
	*rc = hm__call(l, v, request);
	/* release: the reaper that reads NULL here may finalise v */
	atomic_store_explicit(slot, NULL, memory_order_release);
	atomic_signal_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&v->deferred, memory_order_relaxed))
		hm__reaper_wake(l);
	return true;
}

int hm_dispatch(hm_loader *l, const char *path, void *request)
{
	struct hm__version *mod, *stale = NULL;
	struct hm__thread *self;
	struct hm__hazards *w;
	struct hm__entry *e;
	bool check = false;
	size_t len;
	int rc;

	if ((rc = hm__api_check(l, path, path, "hm_dispatch", false)) != 0)
		return rc;
	if (*path == '/')
		path++;
	len = strlen(path);
	self = hm__self();
	w = hm__window_open(self);
	/* Looked up once, whichever way the version is then held. */
	e = hm__request_entry(l, path, len, &check);
	if (e && !check) {
		if (hm__dispatch_hazard(l, self, w, e, request, &rc))
			return rc;
		if (hm__get_current(e, &mod)) {
			hm__window_close(w);
			goto call;
		}
		stale = mod;
	}
	if ((rc = hm__get_slow_path(l, w, e, stale, path, len, check, &mod)) < 0)
		return rc;
call:
	rc = hm__call(l, mod, request);
	hm__put(mod);
	return rc;
}
