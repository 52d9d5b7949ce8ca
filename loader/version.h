/* SPDX-License-Identifier: MIT */
/*
 * version.h - one loaded version of a file (version.c), its end
 * (reaper.c), and the dynamic linker's side of both (dl.c).
 */
#ifndef HOTMOD_VERSION_H
#define HOTMOD_VERSION_H

#include "common.h"
#include "file.h"

/* The hooks copied out of a module's descriptor. */
struct hm__hooks {
	int (*init)(hm_ctx *);
	void (*fini)(hm_ctx *);
	int (*prepare)(hm_ctx *);
	int (*handle)(hm_ctx *);
	int (*commit)(hm_ctx *);
	void (*rollback)(hm_ctx *);
	void (*release)(hm_ctx *);
};

struct hm__entry;

/*
 * One loaded version of one file; what hm_get() hands out.
 *
 * Memory is type-stable: a version's slot is recycled through the loader's
 * free list and only freed by hm_close(), so a thread that read an entry's
 * current pointer may always touch refs, even if the version died since:
 * see hm__version_tryget().
 */
struct hm__version {
	/*
	 * References: the entry's (while current), each hm_get()'s, and each
	 * module version bound to this global version.  0 means dead or free:
	 * never incremented from 0 (get-unless-zero).
	 */
	atomic_ulong refs;
	/* Set before the version is published, constant while refs > 0. */
	struct hm__entry *entry;
	struct hm__version *global; /* global version bound at init; holds a ref */
	struct hm__hooks hooks;
	/* No global and no hook but handle: hm_call() runs just the handler. */
	bool plain;
	/* Found in a hazard slot when its references were gone: the request
	 * clearing the slot wakes the reaper (hazard.c). */
	atomic_bool deferred;
	/* Without membarrier: which threads must pass the scheduler before
	 * the slots are known (hazard.c); reaper only, NULL else. */
	struct hm__quiesce *quiesce;
	unsigned quiesce_tries; /* HM__HZ_WAIT answers so far; reaper only */
	void *state; /* from init */
	void *dl;
	int memfd; /* kept open while loaded: it names the object for glibc */
	uint64_t bytes; /* memfd's size: id's, or the embedder's substitute's */
	uint64_t number;
	struct hm__fileid id; /* the file under the root it was loaded for */
	bool substitute; /* the embedder's admit gave the bytes (hm_open(3)) */
	/* hm_module_digest(), computed on first use: 0 not yet, 1 being
	 * computed, 2 in digest (release) */
	atomic_uchar digest_state;
	unsigned char digest[32];
	uint64_t copy_ns, dlopen_ns, init_ns; /* how long loading it took */
	/*
	 * Hand-over: the next version adopted this one's state (written by
	 * the thread loading it, read by this version's fini), and holds a
	 * reference on that heir so the heir's fini cannot run first.
	 */
	bool adopted;
	struct hm__version *heir;
	/* Protected by the loader's ver_lock. */
	struct hm__version *live_prev, *live_next; /* live list */
	struct hm__version *queue_next;             /* free list, reap queue */
};

/*
 * Load entry's file as a new version bound to global (may be NULL; gid: the
 * identity of the file it holds the bytes of), with prev (may be NULL,
 * referenced by the caller) offered for hand-over.  Returns HM__SAME, and
 * no version, when the file's content is prev's and prev is bound to the
 * same global; HM__GLOBAL_MOVED (see hm__copy_module) and no version when
 * global is not the file's directory's global module now.  readmit
 * (hm_readmit()): admit is asked even when the file holds prev's bytes,
 * and HM__SAME comes only if the bytes it admits are prev's.
 */
/* The SHA-256 of fd's first size bytes (running.c): 0, or HM_ESYS with
 * errno set and no message (async-signal-safe). */
HM__HIDDEN int hm__digest_fd(int fd, off_t size, unsigned char digest[HM_DIGEST_SIZE]);
HM__HIDDEN int hm__version_load(struct hm__entry *e, struct hm__version *global,
	const struct hm__fileid *gid, struct hm__version *prev, bool readmit,
	struct hm__version **out);
/* Take a reference if v still has one; see the slot comment above. */
static inline bool hm__version_tryget(struct hm__version *v)
{
	unsigned long n = atomic_load_explicit(&v->refs, memory_order_relaxed);
	do {
		if (n == 0)
			return false;
		/* acquire: pairs with the release in hm_put() of a dying version,
		 * so a failed check is never stale.  The caller still validates v
		 * against the entry (see hm_get() in request.c). */
	} while (!atomic_compare_exchange_weak_explicit(&v->refs, &n, n + 1,
		memory_order_acquire, memory_order_relaxed));
	return true;
}
/* Drop a reference; true when it was the last: then retire it. */
static inline bool hm__unref(struct hm__version *v)
{
	/*
	 * acq_rel: the release half orders this thread's use of v before the
	 * finalisation; the acquire half makes the last putter see every other
	 * thread's use.  (A release decrement plus an acquire fence would do,
	 * but ThreadSanitizer does not model fences.)
	 */
	return atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1;
}
/* hm_put() after the last reference went: finalise it (not in a child). */
HM__HIDDEN void hm__put_last(struct hm__version *v);
static inline void hm__put(struct hm__version *v)
{
	if (hm__unref(v))
		hm__put_last(v);
}
/* Run fini, dlclose, and put the slot back: v's last reference went and no
 * hazard slot holds it (reaper.c decides when). */
HM__HIDDEN void hm__version_finalise(struct hm__version *v);
HM__HIDDEN void hm__versions_free(hm_loader *l);

/* ---- retiring versions (reaper.c) --------------------------------------------- */

/* The last reference is gone: finalise now or on the reaper thread. */
HM__HIDDEN void hm__version_retire(struct hm__version *v);
HM__HIDDEN void hm__reaper_stop(hm_loader *l);
/* hm_close() without a reaper thread: ask again about waiting versions
 * (ver_lock held, dropped meanwhile); false when none waits. */
HM__HIDDEN bool hm__reap_here(hm_loader *l);
/* Is finalisation under way or due (no reference holds it up)?  ver_lock
 * held. */
HM__HIDDEN bool hm__reaping(const hm_loader *l);
/* A request cleared its slot of a deferred version (request.c). */
HM__HIDDEN void hm__reaper_wake(hm_loader *l);

/* ---- the dynamic linker's side (dl.c) ------------------------------------------ */

/* dlopen memfd's object under a /proc/self/fd name no loaded object has
 * (*memfd may move to another number for that). */
HM__HIDDEN int hm__dl_open(int *memfd, const char *key, void **dl);
/* The hooks of the object's descriptor, each checked to point into code
 * the object mapped, and its request kind (NULL: it declares none),
 * checked to be a string of the rule inside the object's own data. */
HM__HIDDEN int hm__dl_hooks(void *dl, int memfd, const char *key, struct hm__hooks *hooks,
	const char **kind);
/* dlclose; false when the object stayed mapped (pinned: its memfd stays
 * open, counted in e and in its loader, until glibc unloads it). */
HM__HIDDEN bool hm__dl_close(struct hm__entry *e, uint64_t number, void *dl, int memfd);
/* Close the memfds of pinned objects that glibc unloaded since; forget:
 * l closes, and its pins that stay are no longer counted in it. */
HM__HIDDEN void hm__pins_sweep(hm_loader *l, bool forget);

#endif /* HOTMOD_VERSION_H */
