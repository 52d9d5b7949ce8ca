/*
 * hazard_linux.c - what protects a version while hm_dispatch() runs it.
 *
 * hm_get() takes a reference: a compare-and-swap on the version's count,
 * and a decrement in hm_put(), both on one cache line that every thread
 * serving that module writes.  hm_dispatch() knows that its version is
 * used by this thread only, and only until it returns, so it publishes it
 * in a hazard slot of the thread instead: a plain store, a re-check that
 * it is still current, and a store of NULL afterwards.  No atomic
 * read-modify-write, no shared line written.
 *
 * The other half is here, on the side that finalises: before a version
 * whose references are gone is finalised, the reaper issues
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full memory
 * barrier on every CPU running a thread of this process, and then scans
 * every thread's slots.  A request that published the version before that
 * barrier is seen in the scan; one that publishes it after sees, in its
 * re-check, that the version is no longer current, and falls back to a
 * reference.  This is the asymmetric-fence variant of hazard pointers:
 * the reader's store-load fence is replaced by a compiler barrier, paid
 * for by the rare reclaimer.
 *
 * A version found in a slot is deferred (v->deferred set before the
 * barrier); the request clearing its slot then reads v->deferred and wakes
 * the reaper, which scans again.  Where membarrier is missing (before
 * Linux 4.14, or filtered by seccomp), hm_dispatch() takes references.
 *
 * Slot records are per thread, in one list for the process, never freed:
 * a thread's record goes back to the list when the thread exits (a
 * pthread key destructor) for the next thread to take.
 *
 * A record also holds its thread's lookup window (internal.h:
 * hm__window_open), the same idea for table entries: a request stores
 * OPEN before it loads the table and 0 when it no longer uses what it
 * found; hm__hazard_grace() is the reclaimer's half, a membarrier() and
 * then a wait for every open window to close.
 */
#include "internal.h"

#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

static _Atomic(struct hm__hazards *) hm__hz_list;
static pthread_once_t hm__hz_once = PTHREAD_ONCE_INIT;
static pthread_key_t hm__hz_key;
static bool hm__hz_ok; /* written once in hm__hz_once: read after it */
/* A thread had to do without a record although membarrier works: it looks
 * up without a window, so no grace period can be trusted again. */
static atomic_bool hm__hz_unmarked;

static int hm__membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

static void hm__hz_thread_exit(void *arg)
{
	struct hm__hazards *r = arg;

	hm__tls.hz = NULL;
	/* A thread that exits inside a dispatch (pthread_exit() in a handler)
	 * keeps its version forever, as a reference never put would: its
	 * record is not reused. */
	for (int i = 0; i < HM__HAZARDS; i++)
		if (atomic_load_explicit(&r->slot[i], memory_order_relaxed))
			return;
	/* release: the next owner sees the slots NULL, as this thread left them */
	atomic_store_explicit(&r->used, false, memory_order_release);
}

static void hm__hz_init(void)
{
	int cmds = hm__membarrier(MEMBARRIER_CMD_QUERY);

	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
	    hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) < 0)
		return;
	if (pthread_key_create(&hm__hz_key, hm__hz_thread_exit) != 0)
		return;
	hm__hz_ok = true;
}

struct hm__hazards *hm__hazards_attach(struct hm__thread *self)
{
	struct hm__hazards *r;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok) {
		self->hz_failed = true; /* references, from now on */
		return NULL;
	}
	for (r = atomic_load_explicit(&hm__hz_list, memory_order_acquire); r; r = r->next) {
		bool free_one = false;
		/* acquire: pairs with the release in hm__hz_thread_exit() */
		if (!atomic_load_explicit(&r->used, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&r->used, &free_one, true,
			    memory_order_acquire, memory_order_relaxed))
			goto got;
	}
	/* Its own cache line: threads do not write each other's. */
	if (!(r = aligned_alloc(64, sizeof *r))) {
		/* seq_cst, before this thread's first lookup: see hm__hazard_grace */
		atomic_store(&hm__hz_unmarked, true);
		self->hz_failed = true;
		return NULL;
	}
	memset(r, 0, sizeof *r);
	atomic_init(&r->used, true);
	r->next = atomic_load_explicit(&hm__hz_list, memory_order_relaxed);
	/* release: a scanner that sees r sees its NULL slots */
	while (!atomic_compare_exchange_weak_explicit(&hm__hz_list, &r->next, r,
		memory_order_release, memory_order_relaxed))
		;
got:
	if (pthread_setspecific(hm__hz_key, r) != 0) {
		atomic_store_explicit(&r->used, false, memory_order_release);
		atomic_store(&hm__hz_unmarked, true);
		self->hz_failed = true;
		return NULL;
	}
	self->hz = r;
	return r;
}

/* Is v in some thread's slot?  Reads each slot with acquire: pairs with
 * the release store of NULL, so a version seen free is no longer used. */
static bool hm__hazard_scan(const struct hm_module *v)
{
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next)
		for (int i = 0; i < HM__HAZARDS; i++)
			if (atomic_load_explicit(&r->slot[i], memory_order_acquire) == v)
				return true;
	return false;
}

bool hm__hazard_held(struct hm_module *v)
{
	pthread_once(&hm__hz_once, hm__hz_init); /* then hm__hz_ok may be read */
	if (!hm__hz_ok)
		return false; /* no slot is ever used */
	/* seq_cst, then the barrier: a request that clears its slot after
	 * the scan is sure to see deferred set, and wakes the reaper. */
	atomic_store(&v->deferred, true);
	/* A child after fork() is not registered (the registration belongs
	 * to the parent's memory): register, once, and try again. */
	if (hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) < 0 &&
	    (hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) < 0 ||
		hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) < 0)) {
		/* Nothing is known to be safe to finalise: keep v until a
		 * request clearing a slot wakes the reaper again. */
		return true;
	}
	if (hm__hazard_scan(v))
		return true;
	atomic_store_explicit(&v->deferred, false, memory_order_relaxed);
	return false;
}

/* The barrier half of both protocols; false if it could not be run. */
static bool hm__barrier(void)
{
	/* A child after fork() is not registered (the registration belongs
	 * to the parent's memory): register, once, and try again. */
	return hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
	       (hm__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
		hm__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0);
}

/*
 * Until r's window, open now, has closed; false when it stays open for
 * seconds (a thread stopped in a debugger, or gone inside a window) or stop
 * is set.  Its thread stores only OPEN and 0; marking it WATCHED tells this
 * window from the next one, which a plain OPEN could not: once WATCHED,
 * only the close changes it.
 */
static bool hm__window_wait(struct hm__hazards *r, const atomic_bool *stop)
{
	unsigned long w = HM__WINDOW_OPEN;

	/* Closed, or another window opened since (then that one is waited
	 * for too, which is more than needed, never less). */
	if (!atomic_compare_exchange_strong_explicit(&r->window, &w, HM__WINDOW_WATCHED,
		    memory_order_acquire, memory_order_acquire) &&
	    w != HM__WINDOW_WATCHED)
		return true;
	for (int i = 0; i < 3000; i++) {
		/* acquire: pairs with the release stores of the window, so
		 * what the request did with the entries comes before */
		if (atomic_load_explicit(&r->window, memory_order_acquire) != HM__WINDOW_WATCHED)
			return true;
		if (stop && atomic_load_explicit(stop, memory_order_relaxed))
			return false;
		if (i < 100) {
			sched_yield(); /* a window is a few hundred instructions */
		} else {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
	return false;
}

int hm__hazard_grace(const atomic_bool *stop)
{
	struct hm__hazards *own = hm__tls.hz;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok)
		return HM__GRACE_NONE;
	/*
	 * The caller published a table without the entries it frees.  After
	 * the barrier, each thread's window store came before, so the scan
	 * below sees it odd, or the thread's table load comes after, and it
	 * loads the new table.  A thread that starts without a record set
	 * hm__hz_unmarked before its first lookup: the same argument.
	 */
	if (!hm__barrier())
		return HM__GRACE_LATER;
	if (atomic_load(&hm__hz_unmarked))
		return HM__GRACE_UNMARKED;
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next) {
		/* acquire: pairs with the release store that closed it */
		if (atomic_load_explicit(&r->window, memory_order_acquire) == 0)
			continue;
		/* Our own open window: we are inside a lookup ourselves. */
		if (r == own || !hm__window_wait(r, stop))
			return HM__GRACE_LATER;
	}
	return 0;
}

unsigned long hm__hazard_count(const struct hm_module *v)
{
	unsigned long n = 0;

	pthread_once(&hm__hz_once, hm__hz_init);
	if (!hm__hz_ok)
		return 0;
	for (struct hm__hazards *r = atomic_load_explicit(&hm__hz_list, memory_order_acquire);
	     r; r = r->next)
		for (int i = 0; i < HM__HAZARDS; i++)
			n += atomic_load_explicit(&r->slot[i], memory_order_relaxed) == v;
	return n;
}

/* libhotmod unloaded (dlclose): threads must not call a destructor that is
 * gone.  Records stay allocated: a thread may still point to one. */
__attribute__((destructor)) static void hm__hz_unload(void)
{
	if (hm__hz_ok)
		pthread_key_delete(hm__hz_key);
}
